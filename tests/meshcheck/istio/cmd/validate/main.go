// Command validate runs istiod's validating admission webhook on Kubernetes objects.
//
// It reads a stream of YAML (or JSON) objects on stdin and prints one JSON
// line per object: {"index", "kind", "namespace", "name", "allowed",
// "errors", "warnings"}.  Each object is wrapped in an admission.k8s.io/v1
// AdmissionReview (operation CREATE) and sent, in process, to the HTTP
// handler that istiod's bootstrap registers (pilot/pkg/bootstrap/validation.go:
// server.New with collections.PilotGatewayAPI() and the cluster.local domain
// suffix), so the decode, schema lookup, ValidateConfig and field checks are
// exactly what a cluster's API server would get back from istiod.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"istio.io/istio/pkg/config/schema/collections"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/webhooks/validation/server"
)

// istiod's default --domain (pilot/pkg/bootstrap options: constants.DefaultClusterLocalDomain).
const domainSuffix = "cluster.local"

type verdict struct {
	Index     int      `json:"index"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Allowed   bool     `json:"allowed"`
	Errors    []string `json:"errors"`
	Warnings  []string `json:"warnings"`
}

type meta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func main() {
	// The webhook logs every rejection at info level; the verdicts are the output.
	opts := istiolog.DefaultOptions()
	opts.SetDefaultOutputLevel(istiolog.OverrideScopeName, istiolog.NoneLevel)
	_ = istiolog.Configure(opts)

	mux := http.NewServeMux()
	if _, err := server.New(server.Options{
		Schemas:      collections.PilotGatewayAPI(),
		DomainSuffix: domainSuffix,
		Mux:          mux,
	}); err != nil {
		fail(err)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	decoder := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 1<<16)
	for index := 0; ; {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			fail(fmt.Errorf("object %d: %v", index, err))
		}
		// "---" separators around empty documents decode to null.
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		v, err := review(mux, index, raw)
		if err != nil {
			fail(fmt.Errorf("object %d: %v", index, err))
		}
		line, _ := json.Marshal(v)
		_, _ = out.Write(append(line, '\n'))
		index++
	}
}

// review sends one object through the webhook handler as the API server would.
func review(mux *http.ServeMux, index int, raw []byte) (verdict, error) {
	var m meta
	if err := json.Unmarshal(raw, &m); err != nil {
		return verdict{}, err
	}
	gv, err := schema.ParseGroupVersion(m.APIVersion)
	if err != nil {
		return verdict{}, err
	}
	gvk := metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: m.Kind}
	request := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(fmt.Sprintf("meshcheck-%d", index)),
			Kind:      gvk,
			Resource:  metav1.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: strings.ToLower(m.Kind) + "s"},
			Name:      m.Metadata.Name,
			Namespace: m.Metadata.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(request)
	if err != nil {
		return verdict{}, err
	}
	httpRequest := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	httpRequest.Header.Set("Content-Type", "application/json")
	recorder := httptest.NewRecorder()
	mux.ServeHTTP(recorder, httpRequest)
	if recorder.Code != http.StatusOK {
		return verdict{}, fmt.Errorf("webhook answered HTTP %d: %s", recorder.Code, recorder.Body.String())
	}
	var response admissionv1.AdmissionReview
	if err := json.Unmarshal(recorder.Body.Bytes(), &response); err != nil {
		return verdict{}, fmt.Errorf("webhook answer: %v", err)
	}
	if response.Response == nil {
		return verdict{}, fmt.Errorf("webhook answer without a response: %s", recorder.Body.String())
	}
	v := verdict{
		Index: index, Kind: m.Kind, Namespace: m.Metadata.Namespace, Name: m.Metadata.Name,
		Allowed: response.Response.Allowed, Errors: []string{}, Warnings: response.Response.Warnings,
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	if !v.Allowed {
		message := "rejected without a message"
		if response.Response.Result != nil && response.Response.Result.Message != "" {
			message = response.Response.Result.Message
		}
		v.Errors = append(v.Errors, message)
	}
	return v, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "validate:", err)
	os.Exit(2)
}
