package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/configsnapshot"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/target"
)

// spec.trackConfigs: every reconcile copies the ConfigMaps and Secrets the
// workload's template references into immutable snapshots named by their
// content (configsnapshot), and writes the mapping in the workload's
// rollout control (RolloutControl.Configs). The workload computes its
// revisions from the template with the references renamed, so a changed
// config is a new update revision, released through the strategy like a
// template change. Configs are read from the API (never cached whole: the
// manager watches only their metadata), and Secrets' content never goes
// to logs, events or status.

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;delete

// indexTrackConfigs indexes the Rollouts with spec.trackConfigs ("true"),
// so that a config's change finds the Rollouts that may track it.
const indexTrackConfigs = "rollouts.drover.dev/track-configs"

// configState is what tracking the configs gave in one reconcile.
type configState struct {
	// configs is RolloutControl.Configs to write (nil: not tracking).
	configs map[string]string
	// tracked is status.trackedConfigs.
	tracked []rolloutsv1alpha1.TrackedConfig
	// missing names the configs that do not exist and are not optional.
	missing []string
	// created names the snapshots created (events).
	created []string
	// err: a config could not be read or copied; configs is then the
	// mapping the workload already has, unchanged.
	err error
}

// trackConfigs snapshots the configs the workload's template references
// (spec.trackConfigs) and returns the mapping to write.
func (r *Reconciler) trackConfigs(ctx context.Context, ro *rolloutsv1alpha1.Rollout, w *target.Workload) configState {
	if !ro.Spec.TrackConfigs {
		return configState{}
	}
	st := configState{configs: map[string]string{}}
	var errs []error
	for _, ref := range configsnapshot.References(w.Template) {
		snap, asIs, err := r.snapshot(ctx, ro, ref, &st)
		switch {
		case err != nil:
			errs = append(errs, err)
		case snap == "" && !ref.Optional:
			st.missing = append(st.missing, ref.Kind+" "+ref.Name)
		case snap != "" && !asIs:
			st.configs[ref.Key()] = snap
		}
		st.tracked = append(st.tracked, rolloutsv1alpha1.TrackedConfig{Kind: ref.Kind, Name: ref.Name, Snapshot: snap})
	}
	if st.err = errors.Join(errs...); st.err != nil {
		// Nothing changes until every config can be read: a config left
		// out of the mapping would be a new revision.
		st.configs = nil
		if w.Control != nil && w.Control.Rollout == ro.Name {
			st.configs = maps.Clone(w.Control.Configs)
		}
		st.tracked = ro.Status.TrackedConfigs
	}
	return st
}

// snapshot returns the name of the snapshot of ref's current content,
// creating it when missing. snap is "" when the config does not exist;
// asIs is true when the config is not copied: a snapshot itself (an
// earlier revision's template put back by drover undo) or a service
// account token Secret (its controller owns its content).
func (r *Reconciler) snapshot(ctx context.Context, ro *rolloutsv1alpha1.Rollout, ref configsnapshot.Ref, st *configState) (snap string, asIs bool, err error) {
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ref.Name}
	var obj, want client.Object
	switch ref.Kind {
	case configsnapshot.KindConfigMap:
		var cm corev1.ConfigMap
		obj = &cm
		if err := r.APIReader.Get(ctx, key, &cm); err != nil {
			return "", false, notFoundIsEmpty(err, ref)
		}
		if configsnapshot.IsSnapshot(&cm) {
			return cm.Name, true, nil
		}
		want = configsnapshot.ConfigMapSnapshot(&cm, ro)
	case configsnapshot.KindSecret:
		var sec corev1.Secret
		obj = &sec
		if err := r.APIReader.Get(ctx, key, &sec); err != nil {
			return "", false, notFoundIsEmpty(err, ref)
		}
		if configsnapshot.IsSnapshot(&sec) || sec.Type == corev1.SecretTypeServiceAccountToken {
			return sec.Name, true, nil
		}
		want = configsnapshot.SecretSnapshot(&sec, ro)
	default:
		return "", false, fmt.Errorf("%s %s: unknown kind", ref.Kind, ref.Name)
	}
	if obj.GetDeletionTimestamp() != nil {
		return "", false, nil
	}
	created, err := r.ensureSnapshot(ctx, ro, ref.Kind, want)
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s of %s %s: %w", want.GetName(), ref.Kind, ref.Name, err)
	}
	if created {
		st.created = append(st.created, fmt.Sprintf("%s %s: snapshot %s", ref.Kind, ref.Name, want.GetName()))
	}
	return want.GetName(), false, nil
}

func notFoundIsEmpty(err error, ref configsnapshot.Ref) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
}

// ensureSnapshot creates snapshot want unless it exists. A snapshot the
// metadata cache already shows costs no write; an existing object of that
// name must be a snapshot of this Rollout (its content then is want's: the
// name hashes it, and a snapshot is immutable).
func (r *Reconciler) ensureSnapshot(ctx context.Context, ro *rolloutsv1alpha1.Rollout, kind string, want client.Object) (bool, error) {
	key := client.ObjectKeyFromObject(want)
	cached := metadataOf(kind)
	if err := r.Client.Get(ctx, key, cached); err == nil && configsnapshot.OwnedBy(cached, ro) && cached.DeletionTimestamp == nil {
		return false, nil
	}
	err := r.Client.Create(ctx, want)
	if err == nil {
		ctrl.LoggerFrom(ctx).Info("created a config snapshot", "kind", kind, "snapshot", want.GetName())
		return true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, err
	}
	existing := metadataOf(kind)
	if err := r.APIReader.Get(ctx, key, existing); err != nil {
		return false, fmt.Errorf("reading the existing object: %w", err)
	}
	if !configsnapshot.OwnedBy(existing, ro) {
		return false, fmt.Errorf("%s %s exists and is not a snapshot of this Rollout", kind, key.Name)
	}
	return false, nil
}

// metadataOf is an empty metadata-only object of kind (ConfigMap, Secret),
// read from the manager's metadata cache.
func metadataOf(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return m
}

// setConfigsCondition records condition ConfigsTracked (removed when
// spec.trackConfigs is off) and status.trackedConfigs.
func setConfigsCondition(ro *rolloutsv1alpha1.Rollout, st *rolloutsv1alpha1.RolloutStatus, cs configState) {
	st.TrackedConfigs = cs.tracked
	if !ro.Spec.TrackConfigs {
		meta.RemoveStatusCondition(&st.Conditions, rolloutsv1alpha1.ConditionConfigsTracked)
		return
	}
	c := metav1.Condition{Type: rolloutsv1alpha1.ConditionConfigsTracked, ObservedGeneration: ro.Generation,
		Status: metav1.ConditionTrue, Reason: rolloutsv1alpha1.ReasonConfigsSnapshotted,
		Message: fmt.Sprintf("%d referenced configs tracked", len(cs.tracked))}
	switch {
	case cs.err != nil:
		c.Status, c.Reason = metav1.ConditionFalse, rolloutsv1alpha1.ReasonSnapshotFailed
		c.Message = "configs not snapshotted, the previous mapping is kept: " + cs.err.Error()
	case len(cs.missing) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, rolloutsv1alpha1.ReasonConfigNotFound
		c.Message = strings.Join(cs.missing, ", ") + " not found: the workload's pods reference it as it is and cannot start until it exists"
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// pruneSnapshots deletes the snapshots of this Rollout that nothing uses
// any more: neither the configs about to be written nor those the workload
// carries, nor the template of any of the workload's revisions (the
// workload prunes those by its revisionHistoryLimit, never one a pod
// runs) or its current template. Snapshots are listed from the metadata
// cache; the revisions are read from the API only when a snapshot looks
// unused, and fresh, so that a revision just created keeps its snapshots.
func (r *Reconciler) pruneSnapshots(ctx context.Context, ro *rolloutsv1alpha1.Rollout, w *target.Workload, configs map[string]string) error {
	var snaps []configsnapshot.Ref
	uids := map[string]types.UID{}
	for _, kind := range []string{configsnapshot.KindConfigMap, configsnapshot.KindSecret} {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind + "List"))
		if err := r.Client.List(ctx, list, client.InNamespace(ro.Namespace),
			client.MatchingLabels{rolloutsv1alpha1.LabelRollout: configsnapshot.LabelValue(ro.Name)}); err != nil {
			return fmt.Errorf("listing the %s snapshots: %w", kind, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			if configsnapshot.IsSnapshot(o) && configsnapshot.OwnedBy(o, ro) && o.DeletionTimestamp == nil {
				ref := configsnapshot.Ref{Kind: kind, Name: o.Name}
				snaps = append(snaps, ref)
				uids[ref.Key()] = o.UID
			}
		}
	}
	var carried map[string]string
	if w.Control != nil && w.Control.Rollout == ro.Name {
		carried = w.Control.Configs
	}
	unused := configsnapshot.Unused(snaps, []*corev1.PodTemplateSpec{w.Template}, configs, carried)
	if len(unused) == 0 {
		return nil
	}
	templates, err := r.revisionTemplates(ctx, w)
	if err != nil {
		return err
	}
	log := ctrl.LoggerFrom(ctx)
	for _, s := range configsnapshot.Unused(unused, templates, configs, carried) {
		obj := metadataOf(s.Kind)
		obj.Namespace, obj.Name = ro.Namespace, s.Name
		uid := uids[s.Key()]
		if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting unused snapshot %s %s: %w", s.Kind, s.Name, err)
		}
		log.Info("deleted an unused config snapshot", "kind", s.Kind, "snapshot", s.Name)
	}
	return nil
}

// revisionTemplates reads the templates of the workload's revisions from
// the API.
func (r *Reconciler) revisionTemplates(ctx context.Context, w *target.Workload) ([]*corev1.PodTemplateSpec, error) {
	var list appsv1.ControllerRevisionList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(w.Object.GetNamespace()), client.HasLabels{appsv1alpha1.LabelWorkload}); err != nil {
		return nil, fmt.Errorf("listing the revisions of %s %s: %w", w.Kind, w.Object.GetName(), err)
	}
	var out []*corev1.PodTemplateSpec
	for i := range list.Items {
		rev := &list.Items[i]
		if !metav1.IsControlledBy(rev, w.Object) {
			continue
		}
		t, err := revision.Template(rev)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// forConfig maps a ConfigMap or Secret event (metadata only) to the
// Rollouts with spec.trackConfigs in its namespace whose workload's
// template references it. Snapshots never get here (see SetupWithManager).
func (r *Reconciler) forConfig(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list rolloutsv1alpha1.RolloutList
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexTrackConfigs: "true"}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing the rollouts that track configs", "namespace", o.GetNamespace())
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			ro := &list.Items[i]
			if ro.Spec.TargetRef.Kind == target.KindDeployment {
				continue // refused by the schema; Reconcile stalls it
			}
			w, err := target.Get(ctx, r.Client, ro.Namespace, ro.Spec.TargetRef)
			if err != nil {
				continue // the Rollout has no workload to release a config to
			}
			for _, ref := range configsnapshot.References(w.Template) {
				if ref.Kind == kind && ref.Name == o.GetName() {
					out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ro)})
					break
				}
			}
		}
		return out
	}
}
