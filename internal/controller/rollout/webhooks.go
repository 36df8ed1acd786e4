package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/gate"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// The reconcile's side of the webhooks (webhook_plan.go decides which are
// called): it resolves their headers (Secret values read with the API
// reader, never logged or written anywhere), calls the wanted checks
// concurrently and sends every event to the event webhooks.

// gateConcurrency bounds the webhooks one reconcile calls at once.
const gateConcurrency = 4

// defaultCaller serves Reconcilers without a Webhooks caller.
var defaultCaller = gate.New()

func (r *Reconciler) webhookCaller() *gate.Caller {
	if r.Webhooks != nil {
		return r.Webhooks
	}
	return defaultCaller
}

// callGates calls the wanted checks and returns an answer for each.
func (r *Reconciler) callGates(ctx context.Context, ro *rolloutsv1alpha1.Rollout, d *decision, want []wantGate) map[gateKey]gateResult {
	log := ctrl.LoggerFrom(ctx)
	hooks := map[string]rolloutsv1alpha1.RolloutWebhook{}
	for _, h := range ro.Spec.Webhooks {
		hooks[h.Name] = h
	}
	out := make(map[gateKey]gateResult, len(want))
	secrets := map[string]*corev1.Secret{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, gateConcurrency)
	for _, w := range want {
		h, ok := hooks[w.key.name]
		if !ok {
			out[w.key] = gateResult{message: "no such webhook"}
			continue
		}
		headers, err := r.headers(ctx, ro.Namespace, h.Headers, secrets)
		if err != nil {
			out[w.key] = gateResult{message: err.Error()}
			log.Info("webhook not called", "webhook", h.Name, "type", h.Type, "reason", err.Error())
			continue
		}
		req := webhookRequest(h, headers, gate.Payload{
			Name: ro.Name, Namespace: ro.Namespace, Phase: string(phase(d)), Revision: w.revision, Step: w.step,
			Type: string(h.Type), Metadata: h.Metadata,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res := r.webhookCaller().Call(ctx, req)
			mu.Lock()
			out[w.key] = gateResult{ok: res.OK, message: res.Message}
			mu.Unlock()
			kv := []any{"webhook", h.Name, "type", h.Type, "revision", w.revision, "ok", res.OK, "attempts", res.Attempts, "answer", res.Message}
			if w.step != nil {
				kv = append(kv, "step", *w.step)
			}
			switch {
			case h.Type == rolloutsv1alpha1.WebhookPostRollout, !res.OK && h.Type != rolloutsv1alpha1.WebhookRollback,
				res.OK && h.Type == rolloutsv1alpha1.WebhookRollback:
				log.Info("webhook called", kv...)
			default:
				log.V(1).Info("webhook called", kv...)
			}
		}()
	}
	wg.Wait()
	return out
}

// sendEvents sends the decision's events to the event webhooks, without
// waiting for the answers (failures are logged).
func (r *Reconciler) sendEvents(ctx context.Context, ro *rolloutsv1alpha1.Rollout, d *decision) {
	hooks := webhooksOf(&ro.Spec, rolloutsv1alpha1.WebhookEvent)
	if len(hooks) == 0 || len(d.events) == 0 {
		return
	}
	log := ctrl.LoggerFrom(ctx)
	revision := d.status.CanaryRevision
	if revision == "" {
		revision = d.status.StableRevision
	}
	events := slices.Clone(d.events)
	p := string(phase(d))
	step := d.status.CurrentStepIndex
	if step != nil {
		step = ptr.To(*step)
	}
	secrets := map[string]*corev1.Secret{}
	caller := r.webhookCaller()
	bg := context.WithoutCancel(ctx)
	for _, h := range hooks {
		headers, err := r.headers(ctx, ro.Namespace, h.Headers, secrets)
		if err != nil {
			log.Info("event webhook not called", "webhook", h.Name, "reason", err.Error())
			continue
		}
		go func() {
			for _, e := range events {
				kind := corev1.EventTypeNormal
				if e.warning {
					kind = corev1.EventTypeWarning
				}
				res := caller.Call(bg, webhookRequest(h, headers, gate.Payload{
					Name: ro.Name, Namespace: ro.Namespace, Phase: p, Revision: revision, Step: step,
					Type: string(h.Type), Metadata: h.Metadata,
					Event: &gate.Event{Type: kind, Reason: e.reason, Message: e.message},
				}))
				if !res.OK {
					log.Info("event webhook failed", "webhook", h.Name, "event", e.reason, "answer", res.Message)
				}
			}
		}()
	}
}

func webhookRequest(h rolloutsv1alpha1.RolloutWebhook, headers []gate.Header, p gate.Payload) gate.Request {
	timeout := gate.DefaultTimeout
	if h.Timeout != nil && h.Timeout.Duration > 0 {
		timeout = h.Timeout.Duration
	}
	return gate.Request{URL: h.URL, Headers: headers, Timeout: timeout, Retries: int(ptr.Deref(h.Retries, 0)), Payload: p}
}

// headers resolves headers; values from Secrets (read once per call of
// the reconcile, in secrets) are marked secret.
func (r *Reconciler) headers(ctx context.Context, ns string, hs []rolloutsv1alpha1.HTTPHeader, secrets map[string]*corev1.Secret) ([]gate.Header, error) {
	out := make([]gate.Header, 0, len(hs))
	for _, hd := range hs {
		switch {
		case hd.ValueFrom != nil:
			ref := hd.ValueFrom.SecretKeyRef
			v, err := r.secretValue(ctx, ns, ref, secrets)
			if err != nil {
				var missing missingKeyError
				if ptr.Deref(ref.Optional, false) && errors.As(err, &missing) {
					continue
				}
				return nil, fmt.Errorf("header %s: %w", hd.Name, err)
			}
			out = append(out, gate.Header{Name: hd.Name, Value: string(v), Secret: true})
		case hd.Value != nil:
			out = append(out, gate.Header{Name: hd.Name, Value: *hd.Value})
		}
	}
	return out, nil
}

// gateRetry is how soon a reconcile comes back when it left wanted checks
// uncalled (maxGateRounds).
const gateRetry = time.Second
