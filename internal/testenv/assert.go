package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// EventuallyTimeout is how long Eventually waits.
const EventuallyTimeout = 45 * time.Second

// Eventually polls cond every 100ms until it reports true, and fails the
// test with what and cond's last message after EventuallyTimeout.
func Eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(EventuallyTimeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

// AssertInvalid fails the test unless err is the API server's Invalid
// error and mentions every string of want (the field and the reason).
func AssertInvalid(t testing.TB, err error, want ...string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want Invalid, got %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// Example returns the manifest examples/<name> of the repository.
func Example(name string) ([]byte, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(root, "examples", name))
}

// ExampleObject decodes the manifest examples/<name> (one object) as the
// API server would receive it from kubectl apply.
func ExampleObject(name string) (*unstructured.Unstructured, error) {
	raw, err := Example(name)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		return nil, fmt.Errorf("decoding examples/%s: %w", name, err)
	}
	return u, nil
}
