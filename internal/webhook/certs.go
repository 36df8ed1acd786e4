package webhook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// Keys of the serving certificate secret (the kubernetes.io/tls layout,
// which cert-controller and cert-manager both write) and file names in the
// certificate directory.
const (
	certFile = "tls.crt"
	keyFile  = "tls.key"
	caFile   = "ca.crt"
)

// certMirror copies the serving certificate secret into the directory the
// webhook server reads (its certificate watcher reloads rotated files), and
// tells the webhook configuration syncer when the CA changes. Whoever
// writes the secret (cert-controller inside the manager, or cert-manager)
// the manager reads it the same way, without a volume mount, so it starts
// serving as soon as the certificate exists instead of after the kubelet's
// next secret sync.
type certMirror struct {
	reader client.Reader
	key    types.NamespacedName
	dir    string
	// poll is how often the secret is read once certificates are written
	// (every second until then).
	poll time.Duration

	mu      sync.Mutex
	ca      []byte
	ready   chan struct{}           // closed once the files exist
	changed chan event.GenericEvent // one event per CA change, for the syncer
}

func newCertMirror(reader client.Reader, key types.NamespacedName, dir string) *certMirror {
	return &certMirror{reader: reader, key: key, dir: dir, poll: 30 * time.Second,
		ready: make(chan struct{}), changed: make(chan event.GenericEvent, 1)}
}

// NeedLeaderElection: every replica serves the webhook.
func (m *certMirror) NeedLeaderElection() bool { return false }

// Start polls the secret until ctx ends.
func (m *certMirror) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("webhook-certs")
	for {
		wait := time.Second
		written, err := m.sync(ctx)
		switch {
		case err != nil:
			log.Error(err, "mirroring the webhook serving certificate", "secret", m.key)
		case written:
			wait = m.poll
		default:
			log.V(1).Info("waiting for the webhook serving certificate", "secret", m.key)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// sync reads the secret and writes changed files; it reports whether the
// certificate files exist.
func (m *certMirror) sync(ctx context.Context) (bool, error) {
	s := &corev1.Secret{}
	if err := m.reader.Get(ctx, m.key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading secret %s: %w", m.key, err)
	}
	cert, key, ca := s.Data[certFile], s.Data[keyFile], s.Data[caFile]
	if len(cert) == 0 || len(key) == 0 {
		return false, nil
	}
	if len(ca) == 0 {
		ca = cert // a self-signed serving certificate is its own CA
	}
	for name, data := range map[string][]byte{caFile: ca, keyFile: key, certFile: cert} {
		if err := writeIfChanged(filepath.Join(m.dir, name), data); err != nil {
			return false, err
		}
	}
	m.mu.Lock()
	caChanged := !bytes.Equal(m.ca, ca)
	m.ca = ca
	first := !isClosed(m.ready)
	if first {
		close(m.ready)
	}
	m.mu.Unlock()
	if caChanged {
		select {
		case m.changed <- event.GenericEvent{}:
		default:
		}
	}
	return true, nil
}

// CA returns the CA bundle of the serving certificate (nil until known).
func (m *certMirror) CA() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ca
}

// Ready is closed once the certificate files exist.
func (m *certMirror) Ready() <-chan struct{} { return m.ready }

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// writeIfChanged replaces path with data atomically (rename), so the
// server's certificate watcher never reads a half-written file.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ensureSecret creates the (empty) certificate secret cert-controller
// fills, when it does not exist yet: the Helm chart creates it in a
// cluster; out of cluster the manager does.
func ensureSecret(ctx context.Context, reader client.Reader, c client.Client, key types.NamespacedName) error {
	err := reader.Get(ctx, key, &corev1.Secret{})
	if err == nil || !apierrors.IsNotFound(err) {
		if err != nil {
			return fmt.Errorf("reading the webhook certificate secret %s: %w", key, err)
		}
		return nil
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "drover-manager"}},
	}
	if err := c.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the webhook certificate secret %s (create it, or let the Helm chart do it): %w", key, err)
	}
	return nil
}
