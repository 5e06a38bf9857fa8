// pause blocks until SIGTERM or SIGINT, then exits 0: what a Pod sandbox's first process does,
// and all a test container needs to stay Running.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
}
