// Package podorder orders the pods of a Drover workload: which pods to
// delete first when scaling down (RankForScaleDown) and which pods to update
// first during a rollout (SortForUpdate).
//
// Every function is pure: it makes no API calls, reads no clock (the caller
// passes the current time) and never modifies its inputs. Each function
// computes a small sort key per pod once, sorts the keys and returns a new
// slice, so ordering 10,000 pods takes O(n log n) time and a handful of
// allocations.
package podorder
