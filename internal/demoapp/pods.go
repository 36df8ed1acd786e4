package demoapp

import (
	"context"
	"sort"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultPort is where a pod that declares no TCP container port listens.
const DefaultPort int32 = 8080

// podState is what the server keeps for one pod it serves. listeners and
// pending are written by the worker with Server.mu held.
type podState struct {
	namespace, name string
	uid             types.UID
	last            atomic.Pointer[corev1.Pod] // latest version seen by syncPod
	app             *app
	listeners       map[string]*listener // by address
	pending         bool                 // an address is in use; retry
}

// podAddresses are the addresses a pod is served on: PodIP:port for every
// TCP port of its containers (and native sidecars), or PodIP:8080 when it
// declares none. None unless the pod is Running with an IP.
func podAddresses(p *corev1.Pod) map[string]struct{} {
	if p == nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return nil
	}
	out := map[string]struct{}{}
	for _, port := range podPorts(p) {
		out[hostPort(p.Status.PodIP, port)] = struct{}{}
	}
	return out
}

// podPorts are a pod's TCP container ports, sorted, or DefaultPort.
func podPorts(p *corev1.Pod) []int32 {
	seen := map[int32]bool{}
	var ports []int32
	add := func(c *corev1.Container) {
		for _, cp := range c.Ports {
			if (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) && cp.ContainerPort > 0 && !seen[cp.ContainerPort] {
				seen[cp.ContainerPort] = true
				ports = append(ports, cp.ContainerPort)
			}
		}
	}
	for i := range p.Spec.Containers {
		add(&p.Spec.Containers[i])
	}
	for i := range p.Spec.InitContainers {
		if c := &p.Spec.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	if len(ports) == 0 {
		return []int32{DefaultPort}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	return ports
}

func (s *Server) newPodState(p *corev1.Pod) (*podState, error) {
	m, err := newPodMetrics()
	if err != nil {
		return nil, err
	}
	st := &podState{namespace: p.Namespace, name: p.Name, uid: p.UID, listeners: map[string]*listener{}}
	st.last.Store(p)
	st.app = &app{pod: func() *corev1.Pod { return s.currentPod(st) }, metrics: m, clock: s.clock}
	return st, nil
}

// currentPod is the informer's version of the pod when it is still the same
// pod, else the last one the server saw (a request racing the pod's end).
func (s *Server) currentPod(st *podState) *corev1.Pod {
	if p := s.getPod(st.namespace, st.name); p != nil && p.UID == st.uid {
		return p
	}
	return st.last.Load()
}

// syncPod makes the pod's listeners match podAddresses. It reports whether
// a bind should be retried and whether any listener was closed.
func (s *Server) syncPod(ctx context.Context, key objKey) (retry, closed bool) {
	id := key.String()
	log := s.log.WithValues("pod", id)
	pod := s.getPod(key.namespace, key.name)
	want := podAddresses(pod)

	// Only this goroutine writes podStates and listeners, so it reads them
	// without the lock; others read them under the lock.
	st := s.podStates[id]
	var stale []*listener
	if st != nil && (pod == nil || pod.UID != st.uid || len(want) == 0) {
		for _, l := range st.listeners {
			stale = append(stale, l)
		}
		s.mu.Lock()
		delete(s.podStates, id)
		s.mu.Unlock()
		st = nil
	}
	if st != nil {
		st.last.Store(pod)
		s.mu.Lock()
		for addr, l := range st.listeners {
			if _, ok := want[addr]; !ok {
				stale = append(stale, l)
				delete(st.listeners, addr)
			}
		}
		s.mu.Unlock()
	}
	if len(stale) > 0 {
		closeListeners(stale)
		log.Info("stopped listening", "addresses", addrs(stale))
		closed = true
	}
	if len(want) == 0 {
		return false, closed
	}
	if st == nil {
		var err error
		if st, err = s.newPodState(pod); err != nil {
			log.Error(err, "cannot serve pod")
			return false, closed
		}
		s.mu.Lock()
		s.podStates[id] = st
		s.mu.Unlock()
	}

	var bound []string
	for _, addr := range sortedKeys(want) {
		if _, ok := st.listeners[addr]; ok {
			continue
		}
		l, err := listen(ctx, addr, st.app, log)
		if err != nil {
			if retryableBindError(err) {
				retry = true
				kv := []any{"address", addr, "error", err.Error()}
				if holder := s.podListening(addr); holder != "" && holder != id {
					// Either the holder has not been seen going away yet, or two
					// running pods share an IP (a simulator bug).
					kv = append(kv, "heldBy", holder)
				}
				log.Info("address in use, will retry", kv...)
			} else {
				log.Error(err, "cannot listen for pod", "address", addr)
			}
			continue
		}
		s.mu.Lock()
		st.listeners[addr] = l
		s.mu.Unlock()
		bound = append(bound, addr)
	}
	s.mu.Lock()
	st.pending = retry
	s.mu.Unlock()
	if len(bound) > 0 {
		log.Info("listening", "addresses", bound, "version", appConfigOf(pod).version)
	}
	return retry, closed
}

// podListening returns the pod (namespace/name) whose listener holds addr,
// or "".
func (s *Server) podListening(addr string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, st := range s.podStates {
		if _, ok := st.listeners[addr]; ok {
			return id
		}
	}
	return ""
}

// serving tells whether the server listens on addr for the pod with uid.
func (s *Server) serving(p *corev1.Pod, addr string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.podStates[p.Namespace+"/"+p.Name]
	if st == nil || st.uid != p.UID {
		return false
	}
	_, ok := st.listeners[addr]
	return ok
}

func closeListeners(ls []*listener) {
	done := make(chan struct{}, len(ls))
	for _, l := range ls {
		go func() { l.close(); done <- struct{}{} }()
	}
	for range ls {
		<-done
	}
}

func addrs(ls []*listener) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.addr)
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
