//! Mount options and the Sys seam shared by init and service (being filled in).
