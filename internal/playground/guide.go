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
	canaryGuide(w, cli, env.GatewayURL)
	analysisGuide(w, cli, env.GatewayURL, env.PrometheusURL)
	w("Manager log: %s\n", env.ManagerLog)
	traefik := ""
	if env.GatewayURL != "" {
		traefik = "Traefik, "
	}
	if env.PrometheusURL != "" {
		traefik += "Prometheus, "
	}
	if o.KeepOnExit {
		w("Press Ctrl-C to stop %sthe manager; the cluster is kept (--keep).\n", strings.ToLower(traefik))
	} else {
		w("Press Ctrl-C to stop: %sthe manager, the cluster and %s are removed.\n", traefik, env.Dir)
	}
	p.printf("%s", b.String())
}

// canaryGuide is the guide's section on the canary demo.
func canaryGuide(w func(string, ...any), cli, url string) {
	if url == "" {
		w("The canary demo (examples/rollout.yaml behind Traefik) is off: see step 6 above.\n\n")
		return
	}
	w("Canary release with real traffic (examples/rollout.yaml): CloneSet %s runs 10 pods of demo:v1;\n", CanaryName)
	w("each answers HTTP with its name and version. Traefik serves the Gateway %s at %s\n", GatewayName, url)
	w("and routes it, through the HTTPRoute %s, to the Services of the Rollout %s. See the split:\n\n", CanaryName, CanaryName)
	w("  curl -s %s; echo\n", url)
	w("  %s\n\n", SplitCommand(url))
	w("Release v2 (the HTTPRoute's weights are the Rollout's job), and watch it:\n\n")
	w("  %s set image cloneset/%s app=demo:v2\n", cli, CanaryName)
	w("  %s get rollout %s -w\n\n", cli, CanaryName)
	w("What to expect:\n")
	w("  - 1 of the 10 pods is updated in place to v2 (same pod, same IP, the container restarts)\n")
	w("    and gets 10%% of the requests, for 30s (step pause: {duration: 30s});\n")
	w("  - then 5 pods and 50%% of the requests, until you promote: %s promote %s\n", cli, CanaryName)
	w("  - then every pod moves to v2 in place and v2 gets 100%%; the Rollout is Healthy again.\n")
	w("  - %s abort %s at any point sends every request, then every pod, back to v1;\n", cli, CanaryName)
	w("    the Rollout stays Degraded until %s retry %s or another image.\n\n", cli, CanaryName)
}

// analysisGuide is the guide's section on the analysis demo.
func analysisGuide(w func(string, ...any), cli, gatewayURL, promURL string) {
	if promURL == "" {
		w("The analysis demo (examples/analysis.yaml judged by Prometheus) is off: see step 7 above.\n\n")
		return
	}
	w("Releases judged by Prometheus (examples/analysis.yaml): the Rollout %s sends 20%%, then 60%% of the\n", AnalysisName)
	w("requests for host %s to a new version, and after each step an AnalysisRun measures the canary's\n", AnalysisHost)
	w("success rate in a real Prometheus (%s) as the application and as the gateway count it.\n", promURL)
	w("The playground sends it about 50 requests a second and plays two releases below, live:\n")
	w("  (1) demo:v2, healthy: %s with no one promoting it;\n", AnalysisPromotedLine)
	w("  (2) demo:v3 answering 20%% errors: %s within 15s, traffic back on demo:v2.\n", AnalysisAbortedLine)
	w("Follow them, and the measurements, with:\n\n")
	w("  %s get rollout %s -w\n", cli, AnalysisName)
	w("  %s get analysisrun\n", cli)
	w("  curl -s -H 'Host: %s' %s; echo\n\n", AnalysisHost, gatewayURL)
}

// SplitCommand is the guide's shell one-liner that sends 200 requests to
// url and counts the versions that answered.
func SplitCommand(url string) string {
	return fmt.Sprintf(`for i in $(seq 200); do curl -s %s; echo; done | grep -o '"version":"[^"]*"' | sort | uniq -c`, url)
}

// AddLogVolumePatch is the guide's JSON patch (for tests).
const AddLogVolumePatch = addLogVolume
