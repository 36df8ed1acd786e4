package demoapp

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// svcState is what the server keeps for one Service it listens for.
// listeners and pending are written by the worker with Server.mu held.
type svcState struct {
	namespace, name string
	listeners       map[string]*listener // by address
	pending         bool
}

// serviceAddresses are the addresses a Service is served on:
// ClusterIP:port for each TCP port, mapped to the port. None for a
// headless Service, an ExternalName Service or one without a selector (its
// endpoints are not pods this server could choose).
func serviceAddresses(v *corev1.Service) map[string]int32 {
	if v == nil || v.Spec.Type == corev1.ServiceTypeExternalName || len(v.Spec.Selector) == 0 ||
		v.Spec.ClusterIP == corev1.ClusterIPNone || net.ParseIP(v.Spec.ClusterIP) == nil {
		return nil
	}
	out := map[string]int32{}
	for _, sp := range v.Spec.Ports {
		if sp.Protocol == "" || sp.Protocol == corev1.ProtocolTCP {
			out[hostPort(v.Spec.ClusterIP, sp.Port)] = sp.Port
		}
	}
	return out
}

// syncService makes the Service's listeners match serviceAddresses. It
// reports whether a bind should be retried and whether any listener was
// closed.
func (s *Server) syncService(ctx context.Context, key objKey) (retry, closed bool) {
	id := key.String()
	log := s.log.WithValues("service", id)
	want := serviceAddresses(s.getService(key.namespace, key.name))

	// Only this goroutine writes svcStates and listeners (see syncPod).
	st := s.svcStates[id]
	var stale []*listener
	if st != nil {
		s.mu.Lock()
		for addr, l := range st.listeners {
			if _, ok := want[addr]; !ok {
				stale = append(stale, l)
				delete(st.listeners, addr)
			}
		}
		if len(want) == 0 {
			delete(s.svcStates, id)
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
		st = &svcState{namespace: key.namespace, name: key.name, listeners: map[string]*listener{}}
		s.mu.Lock()
		s.svcStates[id] = st
		s.mu.Unlock()
	}
	var bound []string
	for _, addr := range sortedKeys(want) {
		if _, ok := st.listeners[addr]; ok {
			continue
		}
		l, err := listen(ctx, addr, s.proxy.handler(key.namespace, key.name, want[addr]), log)
		if err != nil {
			if retryableBindError(err) {
				retry = true
				log.Info("address in use, will retry", "address", addr, "error", err.Error())
			} else {
				log.Error(err, "cannot listen for service", "address", addr)
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
		log.Info("listening", "addresses", bound)
	}
	return retry, closed
}

// podReady tells whether a Service sends traffic to the pod: Running, not
// terminating, with an IP and the Ready condition True.
func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// targetPort resolves a Service port's target on a pod: a number (0 means
// the Service port), or the name of one of the pod's container ports with
// the same protocol. ok is false when the pod has no port of that name.
func targetPort(sp *corev1.ServicePort, p *corev1.Pod) (port int32, ok bool) {
	tp := sp.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal > 0 {
			return tp.IntVal, true
		}
		return sp.Port, true
	}
	if tp.StrVal == "" {
		return sp.Port, true
	}
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	find := func(cs []corev1.Container, sidecarsOnly bool) (int32, bool) {
		for i := range cs {
			c := &cs[i]
			if sidecarsOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, cp := range c.Ports {
				cpProto := cp.Protocol
				if cpProto == "" {
					cpProto = corev1.ProtocolTCP
				}
				if cp.Name == tp.StrVal && cpProto == proto {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if port, ok := find(p.Spec.Containers, false); ok {
		return port, true
	}
	return find(p.Spec.InitContainers, true)
}

// backend is one pod a Service request may go to.
type backend struct {
	pod  string
	addr string // PodIP:targetPort
}

// selectBackends returns, sorted by pod name, the pods of pods that the
// Service's selector matches in its namespace, ready, with a resolvable
// target port for sp, and whose address serves reports listened on.
func selectBackends(v *corev1.Service, sp *corev1.ServicePort, pods []*corev1.Pod, serves func(*corev1.Pod, string) bool) []backend {
	if len(v.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(v.Spec.Selector)
	var out []backend
	for _, p := range pods {
		if p.Namespace != v.Namespace || !sel.Matches(labels.Set(p.Labels)) || !podReady(p) {
			continue
		}
		port, ok := targetPort(sp, p)
		if !ok {
			continue
		}
		addr := hostPort(p.Status.PodIP, port)
		if serves != nil && !serves(p, addr) {
			continue
		}
		out = append(out, backend{pod: p.Name, addr: addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pod < out[j].pod })
	return out
}

// proxy forwards Service requests to pods.
type proxy struct {
	s         *Server
	transport *http.Transport
	rp        *httputil.ReverseProxy
}

type targetKey struct{}

func newProxy(s *Server) *proxy {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	log := s.log.WithName("proxy")
	p := &proxy{s: s, transport: tr}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(targetKey{}).(*url.URL))
			r.Out.Host = r.In.Host // kube-proxy forwards connections, not rewritten requests
		},
		Transport: tr,
		ErrorLog:  newStdLogger(log),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.V(1).Info("forwarding failed", "target", r.URL.Host, "error", err.Error())
			plainError(w, http.StatusBadGateway, "demoapp proxy: "+err.Error())
		},
	}
	return p
}

// handler serves ClusterIP:port of Service namespace/name, choosing a pod
// for every request from the informers' current Service and pods.
func (p *proxy) handler(namespace, name string, port int32) http.Handler {
	var next atomic.Uint64 // round robin
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := p.s.getService(namespace, name)
		if v == nil {
			plainError(w, http.StatusServiceUnavailable, "demoapp proxy: service "+namespace+"/"+name+" not found")
			return
		}
		var sp *corev1.ServicePort
		for i := range v.Spec.Ports {
			if v.Spec.Ports[i].Port == port {
				sp = &v.Spec.Ports[i]
			}
		}
		if sp == nil {
			plainError(w, http.StatusServiceUnavailable, "demoapp proxy: service "+namespace+"/"+name+" has no such port")
			return
		}
		pods, err := p.s.pods.Pods(namespace).List(labels.SelectorFromSet(v.Spec.Selector))
		if err != nil {
			plainError(w, http.StatusInternalServerError, "demoapp proxy: "+err.Error())
			return
		}
		backends := selectBackends(v, sp, pods, p.s.serving)
		if len(backends) == 0 {
			plainError(w, http.StatusServiceUnavailable, "demoapp proxy: no ready pod for service "+namespace+"/"+name)
			return
		}
		b := backends[(next.Add(1)-1)%uint64(len(backends))]
		ctx := context.WithValue(r.Context(), targetKey{}, &url.URL{Scheme: "http", Host: b.addr})
		p.rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (p *proxy) close() { p.transport.CloseIdleConnections() }
