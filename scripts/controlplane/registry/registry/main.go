// The distribution registry's own main (cmd/registry) with only what the tests use: the
// filesystem storage driver and htpasswd auth. The cloud storage drivers upstream's main links
// in would triple the build time and are never used here.
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() {
	// As upstream: the registered commands exit non-zero themselves on failure.
	// nolint:errcheck
	registry.RootCmd.Execute()
}
