package demoapp

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// listener is one bound address with its HTTP server.
type listener struct {
	addr string
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// listen binds addr and serves h on it until close. Requests' contexts
// derive from ctx.
func listen(ctx context.Context, addr string, h http.Handler, log logr.Logger) (*listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	l := &listener{
		addr: ln.Addr().String(),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       90 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return ctx },
			ErrorLog:          newStdLogger(log),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "serving stopped", "address", l.addr)
		}
	}()
	return l, nil
}

// close stops accepting, closes every connection and waits for Serve to
// return; the address is free afterwards.
func (l *listener) close() {
	_ = l.srv.Close()
	<-l.done
}

// retryableBindError tells whether binding may succeed later: the address is
// in use (a pod that held the IP is still going away) rather than not local
// or not permitted.
func retryableBindError(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE)
}

// newStdLogger routes net/http's server errors (bad requests, TLS noise) to
// log at verbosity 1.
func newStdLogger(l logr.Logger) *log.Logger {
	return log.New(logWriter{l.V(1)}, "", 0)
}

type logWriter struct{ l logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
