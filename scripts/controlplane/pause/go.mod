// The node's sandbox ("pause") process and the e2e suite's app: a static binary that waits for
// SIGTERM or SIGINT and exits 0. Made locally, so no image comes from the internet.
module regcred.dev/controlplane/pause

go 1.26.0
