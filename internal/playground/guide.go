package playground

import (
	"fmt"
	"strings"
	"time"
)

// addLogVolume is the JSON patch giving the demo pods the volume the brief's
// SidecarSet example mounts.
const addLogVolume = `[{"op":"add","path":"/spec/template/spec/volumes","value":[{"name":"log-volume","emptyDir":{}}]}]`

// printGuide tells the user how to use the running playground.
func printGuide(p *printer, o Options, env Env, nodes int, took time.Duration) {
	cli := o.CLI
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("\nDrover playground is ready: cluster %s, %d simulated nodes, CloneSet %s/%s (started in %s).\n\n",
		env.ClusterName, nodes, DemoNamespace, DemoName, took)
	w("In another terminal:\n\n")
	w("  export KUBECONFIG=%s\n", env.Kubeconfig)
	w("  kubectl get cloneset\n")
	w("  %s get cloneset %s -w\n\n", cli, DemoName)
	w("Then trigger an in-place update from a third terminal (same KUBECONFIG):\n\n")
	w("  %s set image cloneset/%s nginx=nginx:1.26\n\n", cli, DemoName)
	w("What to watch for:\n")
	w("  - 3 pods move to the new revision, one at a time (maxUnavailable 20%% of 5 = 1);\n")
	w("    the partition keeps 2 on the old one: \"updated 3/3 (partition 2 keeps 2 on the old revision)\".\n")
	w("  - On each updated pod the readiness gate (GATE, InPlaceUpdateReady) turns False and the pod\n")
	w("    leaves the Service endpoints; after the 10s grace period the nginx container restarts\n")
	w("    with the new image and GATE and READY turn True again (IN-PLACE: Draining, Updating, Done).\n")
	w("  - RESTARTS becomes 1 on the updated pods; pod names, nodes and IPs stay the same.\n")
	w("  - To update the last 2 pods as well, lower the partition:\n")
	w("      kubectl patch cloneset %s --type merge -p '{\"spec\":{\"updateStrategy\":{\"partition\":0}}}'\n\n", DemoName)
	w("The other workloads run here too (examples/ in the repository). The playground's manager\n")
	w("serves the SidecarSet injection webhook: the brief's SidecarSet mounts the pods' log-volume,\n")
	w("so give the demo pods one (a volume change recreates them) and they come back with fluent-bit:\n")
	w("  kubectl apply -f examples/sidecarset.yaml\n")
	w("  kubectl patch cloneset %s --type json -p '%s'\n", DemoName, addLogVolume)
	w("  kubectl get sidecarset\n\n")
	w("Manager log: %s\n", env.ManagerLog)
	if o.KeepOnExit {
		w("Press Ctrl-C to stop the manager; the cluster is kept (--keep).\n")
	} else {
		w("Press Ctrl-C to stop: the manager, the cluster and %s are removed.\n", env.Dir)
	}
	p.printf("%s", b.String())
}

// AddLogVolumePatch is the guide's JSON patch (for tests).
const AddLogVolumePatch = addLogVolume
