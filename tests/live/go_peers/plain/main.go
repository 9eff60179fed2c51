// plain - a Go program that uses neither crypto/tls nor net/http: a TCP
// echo server. The Go plugin's unit test checks that such a binary gets
// goroutine tracking only, with no reason logged for what it lacks.
package main

import (
	"io"
	"net"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(c, c); c.Close() }()
	}
}
