// Command cilium-check lets the Cilium agent's own code judge what smi2mesh
// emits for the cilium target.
//
//	cilium-check admit < objects.yaml   # YAML stream in, JSON list out
//	cilium-check flows < worlds.json    # policies + flows in, verdicts out
//
// admit: every CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy goes
// through the agent's sanitizer (CiliumNetworkPolicy.Parse, the call the
// agent's policy watcher makes), every CiliumEnvoyConfig /
// CiliumClusterwideEnvoyConfig through the agent's CEC resource parser with
// Envoy's proto validation. Other kinds are reported as not judged.
//
// flows: the parsed rules are loaded into Cilium's policy repository
// (pkg/policy) and each flow is answered from the distilled policy-map entry
// of the destination (ingress) and source (egress): allow, deny or L7
// redirect; a redirected request is matched against the Envoy HTTP rules the
// agent computes for the proxy.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cilium-check admit|flows  (input on stdin, JSON on stdout)")
		os.Exit(2)
	}
	// The agent logs warnings while parsing (illegal namespace matches,
	// skipped redirects); keep them on stderr, apart from the JSON answer.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var out any
	switch os.Args[1] {
	case "admit":
		out, err = admitStream(logger, input)
	case "flows":
		out, err = answerWorlds(logger, input)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
	if err := w.Flush(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cilium-check:", err)
	os.Exit(1)
}
