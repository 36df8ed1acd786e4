package childprocess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/childprocess"
)

func start(t *testing.T, script string) *childprocess.Process {
	t.Helper()
	p, err := childprocess.Start(childprocess.Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", script}, TailBytes: 16, Grace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

// Stop ends the whole group: a child the program started dies with it.
func TestStopEndsTheGroup(t *testing.T) {
	p := start(t, "sleep 300 & echo started; wait")
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited not closed after Stop")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// WaitHTTP fails at once, with the end of the output, when the program
// exits; LogTail keeps only the last TailBytes.
func TestWaitHTTPExited(t *testing.T) {
	p := start(t, "echo 0123456789abcdefghij-the-end; exit 3")
	err := p.WaitHTTP(context.Background(), "http://127.0.0.1:1/", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "hij-the-end") {
		t.Fatalf("err = %v", err)
	}
	if tail := p.LogTail(); tail != "defghij-the-end\n" {
		t.Errorf("tail = %q, want the last 16 bytes", tail)
	}
}

func TestWaitHTTPReady(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	p := start(t, "sleep 300")
	if err := p.WaitHTTP(context.Background(), srv.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitHTTP(context.Background(), "http://127.0.0.1:1/", 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("unreachable url: err = %v", err)
	}
}
