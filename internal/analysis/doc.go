// Package analysis is Drover's measurement engine: the pure logic that
// decides which metrics of an AnalysisRun are due, judges a measured value
// against the metric's conditions (CEL or a threshold range), keeps the
// counts and computes the phase of each metric and of the run.
//
// The engine takes no measurement itself: a Provider does (the packages
// under provider/), with an Env that renders the metric's templates
// ({{args.NAME}}, {{rollout.name}}, ...) and reads Secrets when, and only
// when, a measurement needs them. Every secret value an Env reads is
// remembered so that Redact can scrub it from anything written to status,
// events or logs.
//
// Everything time-based takes "now" as an argument: the controller reads it
// from an injected clock.
package analysis
