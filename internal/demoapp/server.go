package demoapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Options configures a Server.
type Options struct {
	// Namespace limits the pods and Services watched; "" watches all.
	Namespace string
	// LabelSelector limits the pods served (and proxied to); "" selects all.
	// Services are not filtered.
	LabelSelector string
	// SDAddr, when not empty, is the address of the Prometheus http_sd
	// endpoint /sd, e.g. "127.0.0.1:0"; SDAddr() reports the bound address.
	SDAddr string
	// Log receives the server's logs; the zero value discards them.
	Log logr.Logger
	// Clock measures request durations and LATENCY_MS delays; nil means the
	// real clock.
	Clock clock.Clock
}

// Stats is a snapshot of what a Server serves.
type Stats struct {
	// Pods is the number of pods with at least one listener.
	Pods int
	// PodListeners is the number of pod addresses listened on.
	PodListeners int
	// Services is the number of Services with at least one listener.
	Services int
	// ServiceListeners is the number of ClusterIP addresses listened on.
	ServiceListeners int
	// PendingBinds is the number of pods and Services with an address that
	// could not be bound yet.
	PendingBinds int
}

// Server serves simulated pods and Services; see the package documentation.
type Server struct {
	opts     Options
	log      logr.Logger
	clock    clock.Clock
	selector labels.Selector

	podFactory  informers.SharedInformerFactory
	svcFactory  informers.SharedInformerFactory
	podInformer cache.SharedIndexInformer
	svcInformer cache.SharedIndexInformer
	pods        corelisters.PodLister
	services    corelisters.ServiceLister
	queue       workqueue.TypedRateLimitingInterface[objKey]
	proxy       *proxy

	started atomic.Bool
	ready   chan struct{}

	mu        sync.RWMutex
	podStates map[string]*podState // by namespace/name
	svcStates map[string]*svcState // by namespace/name
	sdAddr    string
}

// kind tells pods and Services apart in the work queue.
type kind uint8

const (
	kindPod kind = iota + 1
	kindService
)

type objKey struct {
	kind      kind
	namespace string
	name      string
}

func (k objKey) String() string { return k.namespace + "/" + k.name }

const (
	retryBaseDelay = 20 * time.Millisecond
	retryMaxDelay  = 30 * time.Second
)

// New returns a Server for the cluster of cfg. It does not contact the
// cluster; Run does.
func New(cfg *rest.Config, opts Options) (*Server, error) {
	clients, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("demoapp: clientset: %w", err)
	}
	return newServer(clients, opts)
}

func newServer(clients kubernetes.Interface, opts Options) (*Server, error) {
	selector, err := labels.Parse(opts.LabelSelector)
	if err != nil {
		return nil, fmt.Errorf("demoapp: label selector %q: %w", opts.LabelSelector, err)
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	s := &Server{
		opts:      opts,
		log:       opts.Log,
		clock:     opts.Clock,
		selector:  selector,
		ready:     make(chan struct{}),
		podStates: map[string]*podState{},
		svcStates: map[string]*svcState{},
		queue: workqueue.NewTypedRateLimitingQueue(
			workqueue.NewTypedItemExponentialFailureRateLimiter[objKey](retryBaseDelay, retryMaxDelay)),
	}
	s.podFactory = informers.NewSharedInformerFactoryWithOptions(clients, 0,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = opts.LabelSelector }))
	s.svcFactory = informers.NewSharedInformerFactoryWithOptions(clients, 0, informers.WithNamespace(opts.Namespace))
	s.podInformer = s.podFactory.Core().V1().Pods().Informer()
	s.pods = s.podFactory.Core().V1().Pods().Lister()
	s.svcInformer = s.svcFactory.Core().V1().Services().Informer()
	s.services = s.svcFactory.Core().V1().Services().Lister()
	s.proxy = newProxy(s)

	if _, err := s.podInformer.AddEventHandler(s.enqueueHandler(kindPod)); err != nil {
		return nil, fmt.Errorf("demoapp: pod event handler: %w", err)
	}
	if _, err := s.svcInformer.AddEventHandler(s.enqueueHandler(kindService)); err != nil {
		return nil, fmt.Errorf("demoapp: service event handler: %w", err)
	}
	return s, nil
}

func (s *Server) enqueueHandler(k kind) cache.ResourceEventHandler {
	add := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		m, err := meta(obj)
		if err != nil {
			s.log.Error(err, "unexpected object in informer")
			return
		}
		s.queue.Add(objKey{kind: k, namespace: m.GetNamespace(), name: m.GetName()})
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, obj any) { add(obj) },
		DeleteFunc: add,
	}
}

func meta(obj any) (metav1.Object, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o, nil
	case *corev1.Service:
		return o, nil
	}
	return nil, fmt.Errorf("demoapp: unexpected object %T", obj)
}

// Ready is closed once the informers' caches have synced and the listeners
// of the objects found then are bound (or queued for a retry).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// SDAddr is the bound address of the http_sd endpoint ("" when
// Options.SDAddr is empty or Run has not bound it yet). It is set before
// Ready is closed.
func (s *Server) SDAddr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sdAddr
}

// Stats returns what the server listens on now.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var st Stats
	for _, p := range s.podStates {
		if len(p.listeners) > 0 {
			st.Pods++
		}
		st.PodListeners += len(p.listeners)
		if p.pending {
			st.PendingBinds++
		}
	}
	for _, v := range s.svcStates {
		if len(v.listeners) > 0 {
			st.Services++
		}
		st.ServiceListeners += len(v.listeners)
		if v.pending {
			st.PendingBinds++
		}
	}
	return st
}

// Run watches the cluster and serves until ctx is done, then closes every
// listener it opened before returning. It can be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("demoapp: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var sd *listener
	if s.opts.SDAddr != "" {
		var err error
		sd, err = listen(ctx, s.opts.SDAddr, s.sdHandler(), s.log.WithName("sd"))
		if err != nil {
			return fmt.Errorf("demoapp: http_sd endpoint: %w", err)
		}
		s.mu.Lock()
		s.sdAddr = sd.addr
		s.mu.Unlock()
		s.log.Info("serving http_sd", "address", sd.addr)
	}

	var workers sync.WaitGroup
	defer func() {
		s.queue.ShutDown()
		workers.Wait()
		s.podFactory.Shutdown()
		s.svcFactory.Shutdown()
		s.closeAll()
		if sd != nil {
			sd.close()
		}
		s.proxy.close()
		s.log.Info("stopped")
	}()

	s.podFactory.Start(ctx.Done())
	s.svcFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.podInformer.HasSynced, s.svcInformer.HasSynced) {
		return nil // ctx is done
	}
	// Bind what exists now before reporting ready, so that a caller can send
	// requests right after Ready. The queued events repeat this harmlessly.
	for _, key := range s.storedKeys() {
		s.process(ctx, key)
	}
	close(s.ready)
	s.log.Info("ready", "stats", s.Stats())

	workers.Add(1)
	go func() {
		defer workers.Done()
		for s.next(ctx) {
		}
	}()
	<-ctx.Done()
	return nil
}

func (s *Server) storedKeys() []objKey {
	var keys []objKey
	for _, obj := range s.podInformer.GetStore().List() {
		p := obj.(*corev1.Pod)
		keys = append(keys, objKey{kindPod, p.Namespace, p.Name})
	}
	for _, obj := range s.svcInformer.GetStore().List() {
		v := obj.(*corev1.Service)
		keys = append(keys, objKey{kindService, v.Namespace, v.Name})
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.String() < b.String()
	})
	return keys
}

func (s *Server) next(ctx context.Context) bool {
	key, shutdown := s.queue.Get()
	if shutdown {
		return false
	}
	defer s.queue.Done(key)
	s.process(ctx, key)
	return true
}

// process reconciles one key's listeners; a retryable bind failure puts it
// back with backoff.
func (s *Server) process(ctx context.Context, key objKey) {
	var (
		retry  bool
		closed bool
	)
	switch key.kind {
	case kindPod:
		retry, closed = s.syncPod(ctx, key)
	case kindService:
		retry, closed = s.syncService(ctx, key)
	}
	if retry {
		s.queue.AddRateLimited(key)
	} else {
		s.queue.Forget(key)
	}
	if closed {
		// An address was freed: whatever waits for one may bind now.
		for _, k := range s.pendingKeys() {
			if k != key {
				s.queue.Add(k)
			}
		}
	}
}

func (s *Server) pendingKeys() []objKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []objKey
	for _, p := range s.podStates {
		if p.pending {
			keys = append(keys, objKey{kindPod, p.namespace, p.name})
		}
	}
	for _, v := range s.svcStates {
		if v.pending {
			keys = append(keys, objKey{kindService, v.namespace, v.name})
		}
	}
	return keys
}

// closeAll closes every pod and Service listener.
func (s *Server) closeAll() {
	s.mu.Lock()
	pods, svcs := s.podStates, s.svcStates
	s.podStates, s.svcStates = map[string]*podState{}, map[string]*svcState{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		for _, l := range p.listeners {
			wg.Add(1)
			go func() { defer wg.Done(); l.close() }()
		}
	}
	for _, v := range svcs {
		for _, l := range v.listeners {
			wg.Add(1)
			go func() { defer wg.Done(); l.close() }()
		}
	}
	wg.Wait()
}

// getPod reads a pod from the informer; nil when it does not exist.
func (s *Server) getPod(namespace, name string) *corev1.Pod {
	p, err := s.pods.Pods(namespace).Get(name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			s.log.Error(err, "reading pod from the informer", "pod", namespace+"/"+name)
		}
		return nil
	}
	return p
}

// getService reads a Service from the informer; nil when it does not exist.
func (s *Server) getService(namespace, name string) *corev1.Service {
	v, err := s.services.Services(namespace).Get(name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			s.log.Error(err, "reading service from the informer", "service", namespace+"/"+name)
		}
		return nil
	}
	return v
}

// hostPort joins an IP and a port.
func hostPort(ip string, port int32) string {
	return net.JoinHostPort(ip, fmt.Sprint(port))
}

// plainError answers with a short text error.
func plainError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
