package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// imageKindsV2 is the image the kind rows update to.
const imageKindsV2 = "example.com/app:v2"

// kindRow is an update scenario for a workload kind other than CloneSet:
// create the objects, wait until they are Ready, then time one update
// until every object is Ready again at its new generation.
type kindRow struct {
	scenario string
	// objects are created in order (YAML); the last one is patched.
	objects []string
	// pods is the number of pods the update touches (per-pod figures).
	pods int
	// patch is a JSON patch on the last object (the first with
	// patchFirst) that starts the update; "" times the creation itself.
	patch      string
	patchFirst bool
	// done is an extra end condition on the patched object's status
	// (beyond Ready True at its generation); nil: none.
	done func(status map[string]any) (bool, string)
}

func (b *bench) kindRows(ctx context.Context) error {
	n := b.o.pods
	rows := []kindRow{
		{
			scenario: fmt.Sprintf("Drover: StatefulSet (Parallel) in-place image update of %d pods, maxUnavailable 50%%", n),
			objects: []string{fmt.Sprintf(`apiVersion: apps.drover.dev/v1alpha1
kind: StatefulSet
metadata: {name: bench-sts, namespace: %s}
spec:
  replicas: %d
  serviceName: bench-sts
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: bench-sts}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {podUpdatePolicy: InPlaceIfPossible, maxUnavailable: 50%%}
  template:
    metadata: {labels: {app: bench-sts}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: %s, image: %s}]
`, droverNS, n, containerName, imageV1)},
			pods:  n,
			patch: fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, imageKindsV2),
			done:  statusAtLeast("updatedReadyReplicas", int64(n)),
		},
		{
			scenario: fmt.Sprintf("Drover: DaemonSet in-place image update across %d nodes, maxUnavailable 20%%", b.o.nodes),
			objects: []string{fmt.Sprintf(`apiVersion: apps.drover.dev/v1alpha1
kind: DaemonSet
metadata: {name: bench-ds, namespace: %s}
spec:
  selector: {matchLabels: {app: bench-ds}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {type: InPlaceIfPossible, maxUnavailable: 20%%}
  template:
    metadata: {labels: {app: bench-ds}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: %s, image: %s}]
`, droverNS, containerName, imageV1)},
			pods:  b.o.nodes,
			patch: fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, imageKindsV2),
			done:  statusAtLeast("updatedNumberScheduled", int64(b.o.nodes)),
		},
	}
	rows = append(rows, kindRow{
		scenario: fmt.Sprintf("Drover: BroadcastJob run once on each of %d nodes (pods exit 0 after 1 s), parallelism 100%%", b.o.nodes),
		objects: []string{fmt.Sprintf(`apiVersion: apps.drover.dev/v1alpha1
kind: BroadcastJob
metadata: {name: bench-bcj, namespace: %s}
spec:
  parallelism: 100%%
  completionPolicy: {type: Always}
  template:
    metadata:
      labels: {app: bench-bcj}
      annotations: {kwok.drover.dev/exit-code: "0"}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 0
      containers: [{name: %s, image: %s}]
`, droverNS, containerName, imageV1)},
		pods: b.o.nodes,
		done: statusAtLeast("succeeded", int64(b.o.nodes)),
	})
	rows = append(rows, kindRow{
		scenario: fmt.Sprintf("Drover: SidecarSet in-place sidecar upgrade of %d pods (ColdUpgrade), maxUnavailable 20%%", n),
		objects: []string{fmt.Sprintf(`apiVersion: apps.drover.dev/v1alpha1
kind: SidecarSet
metadata: {name: bench-sidecar}
spec:
  selector: {matchLabels: {app: bench-sc}}
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}
  containers: [{name: sidecar, image: example.com/sidecar:v1}]
  updateStrategy: {type: RollingUpdate, maxUnavailable: 20%%}
`, droverNS), fmt.Sprintf(`apiVersion: apps.drover.dev/v1alpha1
kind: CloneSet
metadata: {name: bench-sc, namespace: %s}
spec:
  replicas: %d
  selector: {matchLabels: {app: bench-sc}}
  template:
    metadata: {labels: {app: bench-sc}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: %s, image: %s}]
`, droverNS, n, containerName, imageV1)},
		pods: n,
		// The SidecarSet (created first) is patched: move it last.
		patchFirst: true,
		patch:      `[{"op":"replace","path":"/spec/containers/0/image","value":"example.com/sidecar:v2"}]`,
		done:       statusAtLeast("updatedReadyPods", int64(n)),
	})
	for _, k := range rows {
		if err := b.kindRow(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// statusAtLeast is a done condition: status.<field> >= want.
func statusAtLeast(field string, want int64) func(map[string]any) (bool, string) {
	return func(st map[string]any) (bool, string) {
		got, _, _ := unstructured.NestedInt64(st, field)
		return got >= want, fmt.Sprintf("%s %d/%d", field, got, want)
	}
}

func (b *bench) kindRow(ctx context.Context, k kindRow) error {
	// A row without a patch times its objects' creation until done (a
	// BroadcastJob's run); the others time the patch.
	var m *measurement
	var err error
	if k.patch == "" {
		logf("drover: %s", k.scenario)
		if m, err = b.begin(ctx); err != nil {
			return err
		}
	}
	var objs []*unstructured.Unstructured
	for _, y := range k.objects {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(y), &u.Object); err != nil {
			return fmt.Errorf("%s: %w", k.scenario, err)
		}
		if err := b.cl.Create(ctx, u); err != nil {
			return fmt.Errorf("%s: create %s %s: %w", k.scenario, u.GetKind(), u.GetName(), err)
		}
		objs = append(objs, u)
	}
	defer b.deleteAndWait(ctx, objs)
	if k.patchFirst {
		objs = append(objs[1:], objs[0])
	}
	target := objs[len(objs)-1]
	if k.patch != "" {
		logf("drover: %s: waiting for the %s to be ready", k.scenario, target.GetKind())
		if err := b.waitObjects(ctx, objs, nil, k.pods); err != nil {
			return err
		}
		logf("drover: %s", k.scenario)
		if m, err = b.begin(ctx); err != nil {
			return err
		}
		if err := b.cl.Patch(ctx, target.DeepCopy(), client.RawPatch(types.JSONPatchType, []byte(k.patch))); err != nil {
			return fmt.Errorf("%s: patch: %w", k.scenario, err)
		}
	}
	waitErr := b.waitObjects(ctx, objs, k.done, k.pods)
	// The issue sets no targets for these rows: they are reported.
	r := &row{scenario: k.scenario, wall: time.Since(m.start), target: "reported"}
	if waitErr != nil {
		return waitErr
	}
	if err := m.finish(ctx, r, k.pods); err != nil {
		return err
	}
	b.add(r)
	return nil
}

// waitObjects waits until every object is Ready at its current generation
// (kstatus: observedGeneration and condition Ready True for it), and the
// last one also meets done.
func (b *bench) waitObjects(ctx context.Context, objs []*unstructured.Unstructured, done func(map[string]any) (bool, string), pods int) error {
	return waitFor(ctx, podTimeout(pods), "workloads ready", func() (bool, string) {
		for i, o := range objs {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(o.GroupVersionKind())
			if err := b.cl.Get(ctx, client.ObjectKeyFromObject(o), cur); err != nil {
				return false, err.Error()
			}
			if ok, msg := readyAtGeneration(cur); !ok {
				return false, msg
			}
			if i == len(objs)-1 && done != nil {
				st, _, _ := unstructured.NestedMap(cur.Object, "status")
				if ok, msg := done(st); !ok {
					return false, fmt.Sprintf("%s %s: %s", cur.GetKind(), cur.GetName(), msg)
				}
			}
		}
		return true, ""
	})
}

func readyAtGeneration(u *unstructured.Unstructured) (bool, string) {
	gen := u.GetGeneration()
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var conds []metav1.Condition
	for _, c := range raw {
		m, _ := c.(map[string]any)
		var cond metav1.Condition
		cond.Type, _ = m["type"].(string)
		s, _ := m["status"].(string)
		cond.Status = metav1.ConditionStatus(s)
		og, _ := m["observedGeneration"].(int64)
		cond.ObservedGeneration = og
		conds = append(conds, cond)
	}
	c := meta.FindStatusCondition(conds, appsv1alpha1.ConditionReady)
	ok := observed == gen && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gen
	return ok, fmt.Sprintf("%s %s: generation %d observed %d, Ready %v", u.GetKind(), u.GetName(), gen, observed, c)
}

// deleteAndWait deletes the row's objects (last first) and waits until
// their pods are gone, so later rows start from a quiet cluster.
func (b *bench) deleteAndWait(ctx context.Context, objs []*unstructured.Unstructured) {
	for i := len(objs) - 1; i >= 0; i-- {
		_ = b.cl.Delete(ctx, objs[i], client.PropagationPolicy(metav1.DeletePropagationBackground))
	}
	err := waitFor(ctx, 5*time.Minute, "row's pods deleted", func() (bool, string) {
		pods, err := b.cs.CoreV1().Pods(droverNS).List(ctx, metav1.ListOptions{LabelSelector: "app in (bench-sts,bench-ds,bench-sc,bench-bcj)"})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 0, fmt.Sprintf("%d pods left", len(pods.Items))
	})
	if err != nil {
		logf("%v", err)
	}
}
