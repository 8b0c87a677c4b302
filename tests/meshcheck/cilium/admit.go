package main

// Admission: the agent's own parsers, object by object.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"unsafe"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/cilium/cilium/pkg/annotation"
	"github.com/cilium/cilium/pkg/ciliumenvoyconfig"
	"github.com/cilium/cilium/pkg/defaults"
	// Registers every Envoy extension type the agent accepts in CECs, as the
	// agent binary does (pkg/envoy/resource/envoy.go).
	_ "github.com/cilium/cilium/pkg/envoy/resource"
	cilium_v2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy/api"
)

// clusterName is the agent's default --cluster-name; with the default
// --policy-default-local-cluster=true the agent passes it to Parse, which adds
// a `k8s:io.cilium.k8s.policy.cluster` match to every peer selector
// (pkg/policy/k8s/cilium_network_policy.go, pkg/clustermesh/types/option.go).
const clusterName = defaults.ClusterName

// verdict is the answer for one input document.
type verdict struct {
	Index      int    `json:"index"`
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// Judged is false for kinds no Cilium parser reads (Gateway API routes).
	Judged bool `json:"judged"`
	// OK: the agent accepts the object.
	OK     bool     `json:"ok"`
	Errors []string `json:"errors"`
	// Dropped lists fields the agent's Go types do not know: the agent
	// decodes leniently and would lose them without a word.
	Dropped []string `json:"dropped"`
	// Rules is how many policy rules the agent derived (CNP/CCNP) or how
	// many xDS resources it kept (CEC/CCEC).
	Rules int `json:"rules"`
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// splitYAML returns the JSON form of every non-empty document of a YAML stream.
func splitYAML(input []byte) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(input)))
	var docs [][]byte
	for {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		doc, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs), err)
		}
		if t := bytes.TrimSpace(doc); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		docs = append(docs, doc)
	}
}

func admitStream(logger *slog.Logger, input []byte) ([]verdict, error) {
	docs, err := splitYAML(input)
	if err != nil {
		return nil, err
	}
	out := make([]verdict, 0, len(docs))
	for i, doc := range docs {
		out = append(out, admit(logger, i, doc))
	}
	return out, nil
}

// decode reads doc into obj the way the agent's informer does (case-sensitive
// JSON, unknown fields ignored) and also lists what a strict decode rejects.
func decode(doc []byte, obj any) (dropped []string, err error) {
	strict, err := kjson.UnmarshalStrict(doc, obj)
	if err != nil {
		return nil, err
	}
	for _, e := range strict {
		dropped = append(dropped, e.Error())
	}
	return dropped, nil
}

func admit(logger *slog.Logger, index int, doc []byte) verdict {
	var meta typeMeta
	v := verdict{Index: index, Errors: []string{}, Dropped: []string{}}
	if err := json.Unmarshal(doc, &meta); err != nil {
		v.Judged, v.Errors = true, []string{err.Error()}
		return v
	}
	v.APIVersion, v.Kind = meta.APIVersion, meta.Kind
	v.Namespace, v.Name = meta.Metadata.Namespace, meta.Metadata.Name
	if meta.APIVersion != "cilium.io/v2" {
		return v
	}
	var rules int
	var err error
	switch meta.Kind {
	case "CiliumNetworkPolicy":
		v.Judged = true
		rules, v.Dropped, err = admitCNP(logger, doc)
	case "CiliumClusterwideNetworkPolicy":
		v.Judged = true
		rules, v.Dropped, err = admitCCNP(logger, doc)
	case "CiliumEnvoyConfig", "CiliumClusterwideEnvoyConfig":
		v.Judged = true
		rules, v.Dropped, err = admitCEC(logger, meta.Kind, doc)
	default:
		return v
	}
	v.Rules = rules
	if err != nil {
		v.Errors = append(v.Errors, err.Error())
	} else {
		v.OK = true
	}
	if v.Dropped == nil {
		v.Dropped = []string{}
	}
	return v
}

// parseCNP decodes and sanitizes one CiliumNetworkPolicy exactly as the
// agent's policy watcher does before handing the rules to the repository.
func parseCNP(logger *slog.Logger, doc []byte) (api.Rules, []string, error) {
	var cnp cilium_v2.CiliumNetworkPolicy
	dropped, err := decode(doc, &cnp)
	if err != nil {
		return nil, nil, err
	}
	rules, err := cnp.Parse(logger, clusterName)
	return rules, dropped, err
}

func admitCNP(logger *slog.Logger, doc []byte) (int, []string, error) {
	rules, dropped, err := parseCNP(logger, doc)
	return len(rules), dropped, err
}

func admitCCNP(logger *slog.Logger, doc []byte) (int, []string, error) {
	var ccnp cilium_v2.CiliumClusterwideNetworkPolicy
	dropped, err := decode(doc, &ccnp)
	if err != nil {
		return 0, nil, err
	}
	rules, err := ccnp.Parse(logger, clusterName)
	return len(rules), dropped, err
}

// fakePorts stands in for the agent's proxy port allocator: the parser asks it
// for a listener port only after every other check passed.
type fakePorts struct{ next uint16 }

func (f *fakePorts) AllocateCRDProxyPort(string) (uint16, error) {
	f.next++
	return 10000 + f.next, nil
}
func (f *fakePorts) AckProxyPortWithReference(context.Context, string) error { return nil }
func (f *fakePorts) ReleaseProxyPort(string) error                           { return nil }

// newCECParser builds the agent's CEC resource parser outside its hive. Its
// constructor is unexported, so the two fields ParseResources uses (logger and
// port allocator) are set by reflection; a renamed field fails loudly.
func newCECParser(logger *slog.Logger) (*ciliumenvoyconfig.CECResourceParser, error) {
	parser := &ciliumenvoyconfig.CECResourceParser{}
	value := reflect.ValueOf(parser).Elem()
	set := func(name string, v any) error {
		field := value.FieldByName(name)
		if !field.IsValid() {
			return fmt.Errorf("CECResourceParser has no field %q in this Cilium version", name)
		}
		reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem().Set(reflect.ValueOf(v))
		return nil
	}
	if err := set("logger", logger); err != nil {
		return nil, err
	}
	var ports ciliumenvoyconfig.PortAllocator = &fakePorts{}
	if err := set("portAllocator", ports); err != nil {
		return nil, err
	}
	return parser, nil
}

func admitCEC(logger *slog.Logger, kind string, doc []byte) (int, []string, error) {
	var cec cilium_v2.CiliumEnvoyConfig
	if kind == "CiliumClusterwideEnvoyConfig" {
		var ccec cilium_v2.CiliumClusterwideEnvoyConfig
		dropped, err := decode(doc, &ccec)
		if err != nil {
			return 0, nil, err
		}
		cec = cilium_v2.CiliumEnvoyConfig{ObjectMeta: ccec.ObjectMeta, Spec: ccec.Spec}
		return parseCEC(logger, doc, &cec, dropped)
	}
	dropped, err := decode(doc, &cec)
	if err != nil {
		return 0, nil, err
	}
	return parseCEC(logger, doc, &cec, dropped)
}

func parseCEC(logger *slog.Logger, doc []byte, cec *cilium_v2.CiliumEnvoyConfig, dropped []string) (int, []string, error) {
	// XDSResource.UnmarshalJSON only logs a resource it cannot decode and
	// leaves it empty; ParseResources then skips it. The agent would run
	// without that resource, so an undecodable resource is an error here,
	// with protojson's reason.
	var raw struct {
		Spec struct {
			Resources []json.RawMessage `json:"resources"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		return 0, dropped, err
	}
	for i, res := range raw.Spec.Resources {
		if err := protojson.Unmarshal(res, &anypb.Any{}); err != nil {
			return 0, dropped, fmt.Errorf("spec.resources[%d]: the agent drops it silently: %w", i, err)
		}
	}
	// The agent's defaults: IPv4 on (listeners without an address get one).
	option.Config.EnableIPv4 = true
	parser, err := newCECParser(logger)
	if err != nil {
		return 0, dropped, err
	}
	resources, err := parser.ParseResources(
		cec.Namespace, cec.Name, cec.Spec.Resources,
		isL7LB(cec), ciliumenvoyconfig.InjectCiliumEnvoyFilters(&cec.ObjectMeta, &cec.Spec),
		ciliumenvoyconfig.UseOriginalSourceAddress(&cec.ObjectMeta), true)
	if err != nil {
		return 0, dropped, err
	}
	n := len(resources.Listeners) + len(resources.Routes) + len(resources.Clusters) +
		len(resources.Endpoints) + len(resources.Secrets)
	return n, dropped, nil
}

// isL7LB mirrors the agent's unexported isL7LB
// (pkg/ciliumenvoyconfig/cec_resource_parser.go): the annotation wins, else
// the presence of L7 LB services.
func isL7LB(cec *cilium_v2.CiliumEnvoyConfig) bool {
	if v, ok := cec.Annotations[annotation.CECIsL7LB]; ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return len(cec.Spec.Services) > 0
}
