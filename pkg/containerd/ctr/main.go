// ctr, built from Debian's containerd sources: the source package carries cmd/ctr/app but not the few
// lines of cmd/ctr/main.go that run it. Built static by pkg/containerd/Dockerfile and `cargo xtask images`.
package main

import (
	"fmt"
	"os"

	"github.com/containerd/containerd/cmd/ctr/app"
)

func main() {
	if err := app.New().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "ctr: %s\n", err)
		os.Exit(1)
	}
}
