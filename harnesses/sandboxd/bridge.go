package main

// The sandbox's one way out: a TCP listener on loopback inside the sandbox's network namespace whose
// connections are forwarded to a unix socket bound in from the host (the vault proxy's per-session
// listener). HTTPS_PROXY points at the listener; a program that ignores it has no route anywhere.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// startProxyBridge parses "127.0.0.1:3128=unix:/run/berth/proxy.sock" and serves it in the background.
func startProxyBridge(spec string) error {
	listen, target, ok := strings.Cut(spec, "=")
	socket, isUnix := strings.CutPrefix(target, "unix:")
	if !ok || !isUnix || listen == "" || socket == "" {
		return fmt.Errorf("--proxy-bridge must be host:port=unix:/path, got %q", spec)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--proxy-bridge: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				go bridge(c, socket)
			}
		}
	}()
	return nil
}

func bridge(c net.Conn, socket string) {
	defer c.Close()
	u, err := net.Dial("unix", socket)
	if err != nil {
		return // the proxy is down: the client sees its connection closed
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(u, c)
		_ = u.(*net.UnixConn).CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, u)
		_ = c.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}
