package kwokcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Every cluster gets loopback ranges of its own, so that processes serving
// pod and Service addresses (the demo app, a test's listeners) for two
// clusters on one machine never compete for an address: pods in
// 127.<n>.<node>.0/24 and Services in 127.<n+firstServiceOctet>.0.0/16,
// n reserved machine-wide through a lock file holding the owner's pid.
const (
	firstPodOctet     = 16
	podOctets         = 104 // 127.16 - 127.119 for pods
	firstServiceOctet = 120 // 127.136 - 127.239 for Services
)

// network is a reserved pair of loopback ranges.
type network struct {
	octet int
	lock  string
}

// PodCIDRBase is the pod CIDR of the first node; node N gets the N-th /24
// after it.
func (n network) PodCIDRBase() string { return fmt.Sprintf("127.%d.0.0/24", n.octet) }

// ServiceCIDR is the API server's service-cluster-ip-range.
func (n network) ServiceCIDR() string { return fmt.Sprintf("127.%d.0.0/16", n.octet+firstServiceOctet) }

func lockDir() string { return filepath.Join(os.TempDir(), "drover-kwokcluster-networks") }

// reserveNetwork takes a free octet: a lock file created exclusively, or
// one whose owner process is gone.
func reserveNetwork() (network, error) {
	dir := lockDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return network{}, fmt.Errorf("kwokcluster: %w", err)
	}
	for _, i := range rand.Perm(podOctets) {
		octet := firstPodOctet + i
		lock := filepath.Join(dir, strconv.Itoa(octet))
		for attempt := 0; attempt < 2; attempt++ {
			f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err == nil {
				_, werr := fmt.Fprintf(f, "%d\n", os.Getpid())
				cerr := f.Close()
				if err := errors.Join(werr, cerr); err != nil {
					_ = os.Remove(lock)
					return network{}, fmt.Errorf("kwokcluster: writing %s: %w", lock, err)
				}
				return network{octet: octet, lock: lock}, nil
			}
			if !errors.Is(err, os.ErrExist) || ownerAlive(lock) {
				break
			}
			_ = os.Remove(lock) // its owner died without releasing it
		}
	}
	return network{}, fmt.Errorf("kwokcluster: every loopback network in %s is taken", dir)
}

// release frees the octet.
func (n network) release() {
	if n.lock != "" {
		_ = os.Remove(n.lock)
	}
}

func ownerAlive(lock string) bool {
	raw, err := os.ReadFile(lock)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return true // being written right now: leave it
	}
	return syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM)
}
