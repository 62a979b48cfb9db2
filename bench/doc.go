// Package bench holds Tumbler's end-to-end benchmarks. They are ordinary
// `go test -bench` benchmarks; the gateway runs in a child process (the
// test binary re-executed) so that its CPU time can be read on its own.
//
//	go test -run '^$' -bench Onboarding -benchtime 2000x ./bench/
//
// TUMBLER_BENCH_GATEWAY_PROFILE=FILE writes the gateway's CPU profile.
package bench
