package rollout

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/notify"
)

// ReasonNotificationFailed is the Warning event of a notification that
// could not be sent (its URL or headers unreadable) or delivered.
const ReasonNotificationFailed = "NotificationFailed"

// notify hands the decision's notified events to the Rollout's
// notifications. It runs once the status recorded them, so a reconcile
// whose status write failed (and is done again) sends nothing twice; the
// delivery is in the background and never holds the release.
func (r *Reconciler) notify(ctx context.Context, ro *rolloutsv1alpha1.Rollout, d *decision, routed bool) {
	if len(ro.Spec.Notifications) == 0 || r.Notifier == nil {
		return
	}
	msgs := r.messages(ro, d, routed)
	if len(msgs) == 0 {
		return
	}
	log := ctrl.LoggerFrom(ctx)
	regarding := ro.DeepCopy()
	secrets := map[string]*corev1.Secret{}
	bg := context.WithoutCancel(ctx)
	for _, n := range ro.Spec.Notifications {
		var mine []notify.Message
		for _, m := range msgs {
			if n.Sends(m.Trigger) {
				mine = append(mine, m)
			}
		}
		if len(mine) == 0 {
			continue
		}
		report := func(m notify.Message, delivered bool, reason string) {
			r.metrics.notified(regarding, n.Name, delivered)
			if delivered {
				log.V(1).Info("notification delivered", "notification", n.Name, "type", n.Type, "trigger", m.Trigger)
				return
			}
			log.Info("notification not delivered", "notification", n.Name, "type", n.Type, "trigger", m.Trigger, "reason", reason)
			// The action names the receiver: events of one object, reason
			// and action are folded into one series keeping the first note.
			r.Recorder.Eventf(regarding, nil, corev1.EventTypeWarning, ReasonNotificationFailed, "Notify/"+n.Name,
				"notification %s (%s) of %s not delivered: %s", n.Name, n.Type, m.Trigger, reason)
		}
		rcv, err := r.receiver(ctx, ro.Namespace, n, secrets)
		if err != nil {
			for _, m := range mine {
				report(m, false, err.Error())
			}
			continue
		}
		r.Notifier.Send(bg, ro.Namespace+"/"+ro.Name+"/"+n.Name, rcv, mine, report)
	}
}

// messages are the decision's notified events, described with the status
// the reconcile recorded.
func (r *Reconciler) messages(ro *rolloutsv1alpha1.Rollout, d *decision, routed bool) []notify.Message {
	st := &d.status
	var steps int32
	if c := ro.Spec.Strategy.Canary; c != nil {
		steps = int32(len(c.Steps))
	}
	var weight *int32
	if routed {
		weight = &st.DesiredWeight
	}
	now := r.Clock.Now()
	var out []notify.Message
	for _, e := range d.events {
		if e.trigger == "" {
			continue
		}
		revision := st.CanaryRevision
		switch {
		case e.trigger == rolloutsv1alpha1.TriggerAborted && st.AbortedRevision != "":
			revision = st.AbortedRevision
		case revision == "":
			revision = st.StableRevision
		}
		step := e.step
		if step == nil {
			step = st.CurrentStepIndex
		}
		out = append(out, notify.Message{
			Trigger: e.trigger, Reason: e.reason, Text: e.message, Warning: e.warning,
			Rollout: ro.Name, Namespace: ro.Namespace, Phase: string(st.Phase),
			Revision: revision, StableRevision: st.StableRevision, Step: step, Steps: steps, Weight: weight, Time: now,
		})
	}
	return out
}

// receiver resolves a notification's URL and headers (Secret values read
// with the API reader, once per reconcile).
func (r *Reconciler) receiver(ctx context.Context, ns string, n rolloutsv1alpha1.RolloutNotification, secrets map[string]*corev1.Secret) (notify.Receiver, error) {
	url := n.URL
	if n.URLFrom != nil {
		v, err := r.secretValue(ctx, ns, n.URLFrom.SecretKeyRef, secrets)
		if err != nil {
			return notify.Receiver{}, fmt.Errorf("urlFrom: %w", err)
		}
		url = string(v)
	}
	headers, err := r.headers(ctx, ns, n.Headers, secrets)
	if err != nil {
		return notify.Receiver{}, err
	}
	timeout := gate.DefaultTimeout
	if n.Timeout != nil && n.Timeout.Duration > 0 {
		timeout = n.Timeout.Duration
	}
	return notify.Receiver{Name: n.Name, Type: n.Type, URL: url, Channel: n.Channel, Headers: headers,
		Timeout: min(timeout, time.Minute), Metadata: n.Metadata}, nil
}

// secretValue reads a key of a Secret of the namespace (each Secret once
// per reconcile, in secrets). The error names the Secret and key, never a
// value.
func (r *Reconciler) secretValue(ctx context.Context, ns string, ref corev1.SecretKeySelector, secrets map[string]*corev1.Secret) ([]byte, error) {
	sec, ok := secrets[ref.Name]
	if !ok {
		sec = &corev1.Secret{}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, sec); err != nil {
			return nil, fmt.Errorf("reading secret %s: %w", ref.Name, err)
		}
		secrets[ref.Name] = sec
	}
	v, ok := sec.Data[ref.Key]
	if !ok {
		return nil, missingKeyError{secret: ref.Name, key: ref.Key}
	}
	return v, nil
}

// missingKeyError: the Secret exists without the key.
type missingKeyError struct{ secret, key string }

func (e missingKeyError) Error() string {
	return fmt.Sprintf("secret %s has no key %q", e.secret, e.key)
}
