//! Local platform identification from DMI/SMBIOS (`/sys/class/dmi/id/*`) and `/sys/hypervisor/uuid`,
//! before any network traffic. This is what tells AWS from Hetzner from OpenStack, which serve the
//! same EC2 paths.

use std::path::Path;

/// A platform with a known DMI signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon EC2.
    Aws,
    /// Google Compute Engine.
    Gcp,
    /// Hetzner Cloud.
    Hetzner,
    /// OpenStack Nova.
    OpenStack,
    /// Scaleway.
    Scaleway,
    /// Vultr.
    Vultr,
    /// DigitalOcean.
    DigitalOcean,
    /// Microsoft Azure.
    Azure,
    /// VMware.
    Vmware,
}

/// The DMI fields we look at (trimmed; empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    /// `sys_vendor`.
    pub sys_vendor: String,
    /// `product_name`.
    pub product_name: String,
    /// `bios_vendor`.
    pub bios_vendor: String,
    /// `chassis_asset_tag`.
    pub chassis_asset_tag: String,
    /// `board_vendor`.
    pub board_vendor: String,
    /// `/sys/hypervisor/uuid` (Xen-based EC2 instances).
    pub hypervisor_uuid: String,
}

/// The Azure chassis asset tag.
const AZURE_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

impl Dmi {
    /// Reads the fields under `sysfs` (normally `/sys`).
    pub fn read(sysfs: &Path) -> Self {
        let field = |rel: &str| {
            std::fs::read(sysfs.join(rel))
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default()
        };
        Self {
            sys_vendor: field("class/dmi/id/sys_vendor"),
            product_name: field("class/dmi/id/product_name"),
            bios_vendor: field("class/dmi/id/bios_vendor"),
            chassis_asset_tag: field("class/dmi/id/chassis_asset_tag"),
            board_vendor: field("class/dmi/id/board_vendor"),
            hypervisor_uuid: field("hypervisor/uuid"),
        }
    }

    /// Which cloud this is, if the fields say so.
    pub fn cloud(&self) -> Option<Cloud> {
        let any = |needle: &str| {
            [
                &self.sys_vendor,
                &self.product_name,
                &self.bios_vendor,
                &self.board_vendor,
            ]
            .iter()
            .any(|f| f.to_ascii_lowercase().contains(needle))
        };
        if any("amazon ec2") || self.hypervisor_uuid.to_ascii_lowercase().starts_with("ec2") {
            Some(Cloud::Aws)
        } else if any("google") {
            Some(Cloud::Gcp)
        } else if any("hetzner") {
            Some(Cloud::Hetzner)
        } else if any("openstack") || self.chassis_asset_tag == "OpenTelekomCloud" {
            Some(Cloud::OpenStack)
        } else if any("scaleway") {
            Some(Cloud::Scaleway)
        } else if any("vultr") {
            Some(Cloud::Vultr)
        } else if any("digitalocean") {
            Some(Cloud::DigitalOcean)
        } else if self.chassis_asset_tag == AZURE_TAG {
            Some(Cloud::Azure)
        } else if any("vmware") {
            Some(Cloud::Vmware)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(vendor: &str, product: &str) -> Dmi {
        Dmi {
            sys_vendor: vendor.into(),
            product_name: product.into(),
            ..Dmi::default()
        }
    }

    #[test]
    fn known_signatures() {
        assert_eq!(dmi("Amazon EC2", "m5.large").cloud(), Some(Cloud::Aws));
        assert_eq!(
            dmi("Google", "Google Compute Engine").cloud(),
            Some(Cloud::Gcp)
        );
        assert_eq!(dmi("Hetzner", "vServer").cloud(), Some(Cloud::Hetzner));
        assert_eq!(
            dmi("OpenStack Foundation", "OpenStack Nova").cloud(),
            Some(Cloud::OpenStack)
        );
        assert_eq!(
            dmi("DigitalOcean", "Droplet").cloud(),
            Some(Cloud::DigitalOcean)
        );
        assert_eq!(
            dmi("VMware, Inc.", "VMware Virtual Platform").cloud(),
            Some(Cloud::Vmware)
        );
        let azure = Dmi {
            sys_vendor: "Microsoft Corporation".into(),
            chassis_asset_tag: AZURE_TAG.into(),
            ..Dmi::default()
        };
        assert_eq!(azure.cloud(), Some(Cloud::Azure));
        assert_eq!(dmi("QEMU", "Standard PC (Q35 + ICH9, 2009)").cloud(), None);
        assert_eq!(Dmi::default().cloud(), None);
    }

    #[test]
    fn reads_from_a_sysfs_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("class/dmi/id")).unwrap();
        std::fs::write(tmp.path().join("class/dmi/id/sys_vendor"), "Hetzner\n").unwrap();
        assert_eq!(Dmi::read(tmp.path()).cloud(), Some(Cloud::Hetzner));
    }
}
