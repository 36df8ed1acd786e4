// Package webhook serves Drover's pod admission webhook: SidecarSet
// injection on pod creation (injection.go holds what is injected). It also
// manages what the webhook needs to be reachable:
//
//   - the serving certificate: cert-controller (inside the manager) keeps a
//     CA and certificate in a Secret, or cert-manager does (the Helm chart's
//     webhook.certManager.enabled); either way the manager copies the Secret
//     into its certificate directory and serves from there;
//   - the MutatingWebhookConfiguration: one entry per SidecarSet, scoped
//     by the SidecarSet's selectors, with the CA bundle, so a manager outage
//     only ever affects pods some SidecarSet selects.
package webhook

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// DefaultConfigName is the MutatingWebhookConfiguration the manager keeps.
const DefaultConfigName = "drover-sidecar-injector"

// Options configure the injection webhook. It is off unless BindAddress is
// set and the API server's way to reach it (URL or Service) is known.
type Options struct {
	// BindAddress is host:port the webhook server listens on ("" or "0":
	// no webhook).
	BindAddress string
	// URL is the base URL the API server calls (out of cluster, e.g.
	// https://localhost:9443); it wins over Service.
	URL string
	// Service is the Service in front of the manager (in cluster), and
	// ServicePort its port (default 443).
	Service     types.NamespacedName
	ServicePort int32
	// CertDir receives the serving certificate ("" : a new temporary directory).
	CertDir string
	// CertSecret holds the serving certificate and its CA.
	CertSecret types.NamespacedName
	// CertRotation: the manager creates and renews the certificate itself
	// (cert-controller). When false something else (cert-manager) writes
	// CertSecret.
	CertRotation bool
	// ConfigName is the MutatingWebhookConfiguration kept in sync.
	ConfigName string
	// ConfigAnnotations are set on the configuration when the manager
	// creates it (e.g. cert-manager.io/inject-ca-from).
	ConfigAnnotations map[string]string
	// ExcludeNamespaces are never injected, whatever a SidecarSet selects:
	// kube-system and the manager's own namespace, whose pods must be
	// creatable while the webhook is down.
	ExcludeNamespaces []string
	// FailurePolicy of the entries (default Fail: a selected pod is refused
	// rather than created without its sidecars while the webhook is down).
	FailurePolicy admissionregistrationv1.FailurePolicyType
}

// Enabled reports whether the options ask for a webhook.
func (o Options) Enabled() bool {
	return o.BindAddress != "" && o.BindAddress != "0" && (o.URL != "" || o.Service.Name != "")
}

// Setup adds the certificate management, the webhook server (with a
// readiness check named "webhook") and the configuration syncer to mgr.
// It does nothing when the options are not Enabled.
func Setup(mgr manager.Manager, o Options) error {
	if !o.Enabled() {
		return nil
	}
	host, portStr, err := net.SplitHostPort(o.BindAddress)
	if err != nil {
		return fmt.Errorf("webhook bind address %q: %w", o.BindAddress, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("webhook bind address %q: %w", o.BindAddress, err)
	}
	if o.CertDir == "" {
		if o.CertDir, err = os.MkdirTemp("", "drover-webhook-certs-"); err != nil {
			return fmt.Errorf("webhook certificate directory: %w", err)
		}
	} else if err := os.MkdirAll(o.CertDir, 0o700); err != nil {
		return fmt.Errorf("webhook certificate directory: %w", err)
	}
	if o.ConfigName == "" {
		o.ConfigName = DefaultConfigName
	}
	if o.ServicePort == 0 {
		o.ServicePort = 443
	}
	if o.CertSecret.Name == "" {
		o.CertSecret = types.NamespacedName{Namespace: "default", Name: "drover-webhook-cert"}
	}
	clientConfig, dnsNames, err := o.clientConfig()
	if err != nil {
		return err
	}

	mirror := newCertMirror(mgr.GetAPIReader(), o.CertSecret, o.CertDir)
	if o.CertRotation {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ensureSecret(ctx, mgr.GetAPIReader(), mgr.GetClient(), o.CertSecret); err != nil {
			return err
		}
		if err := rotator.AddRotator(mgr, &rotator.CertRotator{
			SecretKey:      o.CertSecret,
			CertDir:        o.CertDir,
			CAName:         "drover-webhook-ca",
			CAOrganization: "drover",
			DNSName:        dnsNames[0],
			ExtraDNSNames:  dnsNames[1:],
			IsReady:        make(chan struct{}),
			// Every replica serves the webhook, so every replica keeps
			// the certificate fresh (writes are optimistic-locked).
			RequireLeaderElection: false,
			ControllerName:        "webhook-cert-rotator",
		}); err != nil {
			return fmt.Errorf("adding the webhook certificate rotator: %w", err)
		}
	}
	if err := mgr.Add(mirror); err != nil {
		return fmt.Errorf("adding the webhook certificate mirror: %w", err)
	}

	srv := crwebhook.NewServer(crwebhook.Options{Host: host, Port: port, CertDir: o.CertDir, CertName: certFile, KeyName: keyFile})
	srv.Register(InjectPath, newInjectHandler(mgr.GetClient(), mgr.GetScheme()))
	if err := mgr.Add(&gatedServer{server: srv, ready: mirror.Ready()}); err != nil {
		return fmt.Errorf("adding the webhook server: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return fmt.Errorf("adding the webhook readiness check: %w", err)
	}

	syncer := &configSyncer{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), name: o.ConfigName,
		clientConfig: clientConfig, ca: mirror.CA, exclude: o.ExcludeNamespaces,
		failure: o.FailurePolicy, annotations: o.ConfigAnnotations,
	}
	key := reconcile.Request{NamespacedName: types.NamespacedName{Name: o.ConfigName}}
	toConfig := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{key}
	})
	return builder.ControllerManagedBy(mgr).
		Named("sidecar-injection-config").
		Watches(&appsv1alpha1.SidecarSet{}, toConfig).
		WatchesRawSource(source.Channel(mirror.changed, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{key}
		}))).
		Complete(syncer)
}

// clientConfig returns how the API server reaches a path, and the DNS
// names the serving certificate must carry (the first is its subject).
func (o Options) clientConfig() (func(path string) admissionregistrationv1.WebhookClientConfig, []string, error) {
	if o.URL != "" {
		u, err := url.Parse(strings.TrimSuffix(o.URL, "/"))
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, nil, fmt.Errorf("webhook URL %q must be https://host[:port][/path]", o.URL)
		}
		if net.ParseIP(u.Hostname()) != nil {
			// cert-controller's certificates carry DNS names only.
			return nil, nil, fmt.Errorf("webhook URL %q: use a host name (e.g. localhost), not an IP address", o.URL)
		}
		base := u.String()
		return func(path string) admissionregistrationv1.WebhookClientConfig {
			return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(base + path)}
		}, []string{u.Hostname(), "localhost"}, nil
	}
	svc, port := o.Service, o.ServicePort
	names := []string{
		svc.Name + "." + svc.Namespace + ".svc",
		svc.Name + "." + svc.Namespace + ".svc.cluster.local",
		svc.Name + "." + svc.Namespace,
	}
	return func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: svc.Namespace, Name: svc.Name, Path: ptr.To(path), Port: ptr.To(port),
		}}
	}, names, nil
}

// gatedServer starts the webhook server once its certificate files exist:
// the server refuses to start without them.
type gatedServer struct {
	server crwebhook.Server
	ready  <-chan struct{}
}

func (g *gatedServer) NeedLeaderElection() bool { return false }

func (g *gatedServer) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-g.ready:
	}
	if err := g.server.Start(ctx); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("webhook server: %w", err)
	}
	return nil
}
