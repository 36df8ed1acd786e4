package playground

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/examples"
	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/internal/traefik"
)

// The canary demo (step 6): examples/rollout.yaml — the CloneSet, the
// HTTPRoute and the Rollout CanaryName — in CanaryNamespace, behind the
// Gateway GatewayName that an out-of-cluster Traefik serves on loopback. An
// in-process demoapp server answers for the pods (and for the Services'
// ClusterIPs, like kube-proxy), so requests through the gateway show which
// version answered.
const (
	CanaryNamespace = "default"
	CanaryName      = "web"
	GatewayName     = "gateway"

	demoAppReadyTimeout = 30 * time.Second
	demoAppStopTimeout  = 30 * time.Second
	// gatewayServeTimeout bounds the wait, once the Rollout is Healthy, for
	// the gateway to answer through the route (Traefik serves a
	// configuration a moment after it has reported the route's status).
	gatewayServeTimeout = 30 * time.Second
)

// errCanarySkipped marks a step-6 failure that only turns the canary demo
// off: Traefik or the Gateway API CRDs could not be set up.
type errCanarySkipped struct{ err error }

func (e errCanarySkipped) Error() string { return e.err.Error() }
func (e errCanarySkipped) Unwrap() error { return e.err }

func skipCanary(format string, a ...any) error {
	return errCanarySkipped{fmt.Errorf(format, a...)}
}

// gatewayPrep is the result of prepareGateway.
type gatewayPrep struct {
	tr  *traefik.Traefik
	err error
}

// startGatewayPrep starts prepareGateway in the background, so that it
// runs while steps 3 to 5 do; step 6 (or cleanup) collects its result.
func (s *session) startGatewayPrep(ctx context.Context, c client.Client) {
	ctx, cancel := context.WithCancel(ctx)
	s.prepCancel = cancel
	s.prepDone = make(chan gatewayPrep, 1)
	go func() {
		tr, err := s.prepareGateway(ctx, c)
		s.prepDone <- gatewayPrep{tr: tr, err: err}
	}()
}

// waitGatewayPrep returns what startGatewayPrep prepared; the session owns
// the Traefik process from then on.
func (s *session) waitGatewayPrep(ctx context.Context) (*traefik.Traefik, error) {
	select {
	case r := <-s.prepDone:
		s.prepDone, s.prepCancel = nil, nil
		s.traefik = r.tr
		return r.tr, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// prepareGateway installs the Gateway API CRDs, starts Traefik and creates
// the Gateway. Any failure is an errCanarySkipped, with nothing left
// running.
func (s *session) prepareGateway(ctx context.Context, c client.Client) (*traefik.Traefik, error) {
	if m := missing(s.binDir, canaryBinaries()); len(m) > 0 {
		return nil, skipCanary("%s missing in %s (make tools builds it)", strings.Join(m, ", "), s.binDir)
	}
	if err := traefik.InstallGatewayAPI(ctx, c); err != nil {
		return nil, skipCanary("installing the Gateway API CRDs (they are read with the go command): %w", err)
	}
	// Traefik's work dir is under the playground's directory: its command
	// line names it, so the reaper and the final check find the process.
	tr, err := traefik.Start(ctx, traefik.Options{
		BinDir: s.binDir, Kubeconfig: s.env.Kubeconfig, WorkDir: filepath.Join(s.env.Dir, "traefik"), Log: s.traefikLog,
	})
	if err != nil {
		return nil, skipCanary("starting Traefik (log: %s): %w", s.traefikLog.path, err)
	}
	if err := traefik.CreateGateway(ctx, c, tr, CanaryNamespace, GatewayName); err != nil {
		if serr := tr.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, skipCanary("creating the Gateway %s/%s: %w", CanaryNamespace, GatewayName, err)
	}
	return tr, nil
}

// startCanary runs step 6: it waits for the Gateway (startGatewayPrep; a
// failure there is an errCanarySkipped), then starts the demoapp server and
// applies examples/rollout.yaml, until the Rollout is Healthy and the
// gateway answers. It returns the gateway's URL and the number of pods.
func (s *session) startCanary(ctx context.Context, cfg *rest.Config, c client.Client, log logr.Logger) (string, int32, error) {
	tr, err := s.waitGatewayPrep(ctx)
	if err != nil {
		return "", 0, err
	}

	// The demo pods' stand-in, for every namespace: pods the user deploys
	// answer too.
	// Its /sd endpoint lists the pods for the analysis demo's Prometheus.
	srv, err := demoapp.New(cfg, demoapp.Options{Log: log.WithName("demoapp"), SDAddr: "127.0.0.1:0"})
	if err != nil {
		return "", 0, fmt.Errorf("playground: %w", err)
	}
	s.demo = srv
	demoCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.demoCancel = cancel
	s.demoDone = make(chan error, 1)
	go func() { s.demoDone <- srv.Run(demoCtx) }()
	select {
	case <-srv.Ready():
	case err := <-s.demoDone:
		s.demoDone <- err
		return "", 0, fmt.Errorf("playground: the demo app server stopped: %v", err)
	case <-ctx.Done():
		return "", 0, ctx.Err()
	case <-time.After(demoAppReadyTimeout):
		return "", 0, fmt.Errorf("playground: the demo app server was not ready within %s", demoAppReadyTimeout)
	}

	if err := applyManifest(ctx, c, "examples/rollout.yaml", examples.Rollout(), CanaryNamespace); err != nil {
		return "", 0, err
	}
	replicas, err := waitRolloutHealthy(ctx, c, CanaryName, s.o.ReadyTimeout, s.mgrDone)
	if err != nil {
		return "", 0, fmt.Errorf("%w (manager log: %s)", err, s.env.ManagerLog)
	}
	if err := waitGatewayServes(ctx, tr.WebURL(), ""); err != nil {
		return "", 0, fmt.Errorf("%w (Traefik's log: %s)", err, s.traefikLog.path)
	}
	return tr.WebURL(), replicas, nil
}

// stopCanary stops the analysis demo (its live stories and traffic, then
// Prometheus), Traefik and the demoapp server.
func (s *session) stopCanary() []error {
	var errs []error
	s.stopBackground()
	if s.prom != nil {
		if err := s.prom.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("playground: %w", err))
		} else {
			s.p.printf("  Prometheus stopped\n")
		}
		s.prom = nil
	}
	if s.prepDone != nil {
		// Step 6 never collected the preparation: end it.
		s.prepCancel()
		r := <-s.prepDone
		s.prepDone, s.prepCancel = nil, nil
		s.traefik = r.tr
	}
	if s.traefik != nil {
		if err := s.stopTraefik(); err != nil {
			errs = append(errs, fmt.Errorf("playground: %w", err))
		} else {
			s.p.printf("  Traefik stopped\n")
		}
	}
	if s.demoCancel != nil {
		s.demoCancel()
		select {
		case err := <-s.demoDone:
			if err != nil {
				errs = append(errs, fmt.Errorf("playground: demo app server: %w", err))
			} else {
				s.p.printf("  demo app server stopped\n")
			}
		case <-time.After(demoAppStopTimeout):
			errs = append(errs, fmt.Errorf("playground: the demo app server did not stop within %s", demoAppStopTimeout))
		}
		s.demoCancel = nil
	}
	return errs
}

func (s *session) stopTraefik() error {
	if s.traefik == nil {
		return nil
	}
	err := s.traefik.Stop()
	s.traefik = nil
	return err
}

// applyManifest server-side applies every object of a multi-document
// manifest in namespace ns. The API server may take a moment to serve a
// just-established CRD, so "no matches for kind" is retried.
func applyManifest(ctx context.Context, c client.Client, name string, raw []byte, ns string) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("playground: reading %s: %w", name, err)
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			return fmt.Errorf("playground: decoding %s: %w", name, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		u.SetNamespace(ns)
		objs = append(objs, u)
	}
	ctx, cancel := context.WithTimeout(ctx, establishTimeout)
	defer cancel()
	for _, u := range objs {
		var last error
		err := poll(ctx, func() (bool, error) {
			last = c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner(fieldOwner), client.ForceOwnership)
			if last == nil {
				return true, nil
			}
			if meta.IsNoMatchError(last) || apierrors.IsNotFound(last) {
				return false, nil
			}
			return false, last
		})
		if err != nil {
			if last != nil && err != last {
				err = fmt.Errorf("%w (last: %v)", err, last)
			}
			return fmt.Errorf("playground: applying %s %s/%s from %s: %w", u.GetKind(), ns, u.GetName(), name, err)
		}
	}
	return nil
}

// waitRolloutHealthy waits until the Rollout name (of CanaryNamespace, on
// the CloneSet of the same name) is Healthy for its current generation,
// with weight 0 verified by the route and every pod of the CloneSet ready
// on the stable revision; it returns the pod count.
func waitRolloutHealthy(ctx context.Context, c client.Client, name string, timeout time.Duration, mgrDone chan error) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var replicas int32
	state := "not found"
	err := poll(ctx, func() (bool, error) {
		if err := managerStopped(mgrDone); err != nil {
			return false, err
		}
		key := client.ObjectKey{Namespace: CanaryNamespace, Name: name}
		cs := &appsv1alpha1.CloneSet{}
		if err := c.Get(ctx, key, cs); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		ro := &rolloutsv1alpha1.Rollout{}
		if err := c.Get(ctx, key, ro); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		replicas = ptr.Deref(cs.Spec.Replicas, 1)
		st := ro.Status
		state = fmt.Sprintf("phase %q, stable revision %q, weight 0 verified %v, %d/%d stable pods ready, observed generation %d of %d, message %q",
			st.Phase, st.StableRevision, ptr.Deref(st.VerifiedWeight, -1) == 0, st.StableReadyReplicas, replicas,
			st.ObservedGeneration, ro.Generation, st.Message)
		return st.ObservedGeneration == ro.Generation && st.Phase == rolloutsv1alpha1.RolloutPhaseHealthy &&
			st.StableRevision != "" && st.StableRevision == cs.Status.UpdateRevision && st.CanaryRevision == "" &&
			ptr.Deref(st.VerifiedWeight, -1) == 0 && st.StableReadyReplicas == replicas &&
			cs.Status.ObservedGeneration == cs.Generation && cs.Status.ReadyReplicas == replicas, nil
	})
	if err != nil {
		return 0, fmt.Errorf("playground: Rollout %s/%s not Healthy (%s): %w", CanaryNamespace, name, state, err)
	}
	return replicas, nil
}

// waitGatewayServes waits until a request through the gateway (for host,
// when not empty) is answered by a demo pod.
func waitGatewayServes(ctx context.Context, url, host string) error {
	ctx, cancel := context.WithTimeout(ctx, gatewayServeTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	err := poll(ctx, func() (bool, error) {
		last = getVersion(ctx, hc, url, host)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("playground: the gateway %s does not answer (last: %v): %w", url, last, err)
	}
	return nil
}

func getVersion(ctx context.Context, hc *http.Client, url, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %q", resp.Status, body)
	}
	var r demoapp.Response
	if err := json.Unmarshal(body, &r); err != nil || r.Version == "" {
		return fmt.Errorf("not a demo pod's answer: %q", body)
	}
	return nil
}

// managerStopped returns an error if the manager has stopped (and leaves
// its result for cleanup).
func managerStopped(mgrDone chan error) error {
	select {
	case err := <-mgrDone:
		mgrDone <- err
		return fmt.Errorf("the manager stopped: %v", err)
	default:
		return nil
	}
}

// firstLine is the first line of an error's text, for a one-line note.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSuffix(strings.TrimSpace(s), ";")
}
