// sandboxd runs inside every Berth sandbox and serves exec, files and health over HTTP/1.1 (see
// PROTOCOL.md). The same static binary also carries the host-side helpers of the local backend:
// `launch` (start a sandbox under a lock, in its cgroups) and `stop` (kill a sandbox's whole tree).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "launch":
			os.Exit(runLaunch(os.Args[2:]))
		case "stop":
			os.Exit(runStop(os.Args[2:]))
		case reaperArg:
			runReaper(os.Args[2:])
			return
		}
	}
	if err := runServe(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		os.Exit(1)
	}
}
