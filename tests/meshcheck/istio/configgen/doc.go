// Package configgen runs istiod's xDS config generator on Istio configuration.
//
// It has no API: configgen_test.go is the tool.  Built with `go test -c`
// (istiod's NewConfigGenTest needs a testing.T), the binary reads scenarios
// from the file named by $MESHCHECK_CONFIGGEN_IN and writes the generated
// Envoy configuration to $MESHCHECK_CONFIGGEN_OUT; see configgen_test.go.
package configgen
