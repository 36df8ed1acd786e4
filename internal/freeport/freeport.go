// Package freeport picks free TCP ports on the loopback interface at run
// time, for the processes the tests, the playground and the benchmark
// start (fixed ports may be held by other processes on a shared machine).
package freeport

import (
	"fmt"
	"net"
)

// Loopback asks the kernel for n distinct free ports on 127.0.0.1. The
// listeners are held until all are chosen, so no port repeats.
func Loopback(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choosing a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
