package configgen

// The scenario input (JSON):
//
//	{"scenarios": [{"id": "...", "configs": "<YAML stream of Istio objects>",
//	  "services": [{"name", "namespace", "vip", "ports": [{"name", "port", "protocol",
//	                "appProtocol", "targetPort"}],
//	                "endpoints": [{"ip", "labels", "serviceAccount"}]}],
//	  "proxies": [{"id", "namespace", "serviceAccount", "ip", "labels", "client"}]}]}
//
// Each service is a Kubernetes Service in all but name: it becomes a
// MESH_INTERNAL ServiceEntry for <name>.<namespace>.svc.cluster.local whose
// port protocols istiod infers with its own Kubernetes rule
// (kube.ConvertProtocol: appProtocol, then name prefix, then UDP/SCTP), and
// whose endpoints are the pods.  NewConfigGenTest has no Kubernetes registry,
// so ServiceEntries stand in for Services.
//
// The output (JSON): per scenario and proxy, the proxy's virtualInbound
// listener (LDS; the HTTP and network RBAC filters of every inbound filter
// chain) and, for a "client" proxy, its outbound listeners (TCP routes) and
// HTTP route configurations (RDS), each as protojson with the Any payloads
// expanded.  Configs are converted with istiod's own CRD conversion and the
// cluster.local domain suffix, as istiod's Kubernetes config controller does.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	kubeyaml "k8s.io/apimachinery/pkg/util/yaml"

	networking "istio.io/api/networking/v1alpha3"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	"istio.io/istio/pkg/config"
	configkube "istio.io/istio/pkg/config/kube"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
	istiolog "istio.io/istio/pkg/log"
)

const domainSuffix = "cluster.local"

type portSpec struct {
	Name        string `json:"name"`
	Port        int32  `json:"port"`
	Protocol    string `json:"protocol"`
	AppProtocol string `json:"appProtocol"`
	// A container port number; names are not resolved (0: same as port).
	TargetPort uint32 `json:"targetPort"`
}

type endpointSpec struct {
	IP             string            `json:"ip"`
	Labels         map[string]string `json:"labels"`
	ServiceAccount string            `json:"serviceAccount"`
}

type serviceSpec struct {
	Name      string         `json:"name"`
	Namespace string         `json:"namespace"`
	VIP       string         `json:"vip"`
	Ports     []portSpec     `json:"ports"`
	Endpoints []endpointSpec `json:"endpoints"`
}

type proxySpec struct {
	ID             string            `json:"id"`
	Namespace      string            `json:"namespace"`
	ServiceAccount string            `json:"serviceAccount"`
	IP             string            `json:"ip"`
	Labels         map[string]string `json:"labels"`
	Client         bool              `json:"client"`
}

type scenario struct {
	ID       string        `json:"id"`
	Configs  string        `json:"configs"`
	Services []serviceSpec `json:"services"`
	Proxies  []proxySpec   `json:"proxies"`
}

type proxyOut struct {
	ID       string            `json:"id"`
	Routes   []json.RawMessage `json:"routes"`
	Outbound []json.RawMessage `json:"outbound"`
	Inbound  json.RawMessage   `json:"inbound"`
	// Service targets istiod found for the proxy: "host:port/protocol".
	Targets []string `json:"targets"`
}

type scenarioOut struct {
	ID      string     `json:"id"`
	Proxies []proxyOut `json:"proxies"`
	// The protocol istiod inferred for each service port: "host:port" -> protocol.
	Protocols map[string]string `json:"protocols"`
}

var marshal = protojson.MarshalOptions{UseProtoNames: false}

func TestConfigGen(t *testing.T) {
	in, out := os.Getenv("MESHCHECK_CONFIGGEN_IN"), os.Getenv("MESHCHECK_CONFIGGEN_OUT")
	if in == "" || out == "" {
		t.Fatal("set MESHCHECK_CONFIGGEN_IN and MESHCHECK_CONFIGGEN_OUT")
	}
	opts := istiolog.DefaultOptions()
	opts.SetDefaultOutputLevel(istiolog.OverrideScopeName, istiolog.NoneLevel)
	_ = istiolog.Configure(opts)

	raw, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var input struct {
		Scenarios []scenario `json:"scenarios"`
	}
	if err := json.Unmarshal(raw, &input); err != nil {
		t.Fatal(err)
	}
	results := make([]scenarioOut, 0, len(input.Scenarios))
	for _, sc := range input.Scenarios {
		t.Run(sc.ID, func(t *testing.T) {
			results = append(results, generate(t, sc))
		})
	}
	if t.Failed() {
		return
	}
	encoded, err := json.Marshal(map[string]any{"scenarios": results})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, encoded, 0o644); err != nil {
		t.Fatal(err)
	}
}

func generate(t *testing.T, sc scenario) scenarioOut {
	configs, err := parse(sc.Configs)
	if err != nil {
		t.Fatalf("scenario %s: %v", sc.ID, err)
	}
	protocols := map[string]string{}
	for _, svc := range sc.Services {
		se := serviceEntry(svc)
		for _, p := range se.Spec.(*networking.ServiceEntry).Ports {
			protocols[se.Spec.(*networking.ServiceEntry).Hosts[0]+":"+itoa(int(p.Number))] = p.Protocol
		}
		configs = append(configs, se)
	}
	cg := core.NewConfigGenTest(t, core.TestOptions{Configs: configs})
	result := scenarioOut{ID: sc.ID, Proxies: []proxyOut{}, Protocols: protocols}
	for _, ps := range sc.Proxies {
		proxy := cg.SetupProxy(&model.Proxy{
			ID:              ps.ID + "." + ps.Namespace,
			ConfigNamespace: ps.Namespace,
			IPAddresses:     []string{ps.IP},
			Labels:          ps.Labels,
			Metadata: &model.NodeMetadata{
				Namespace:      ps.Namespace,
				Labels:         ps.Labels,
				ServiceAccount: ps.ServiceAccount,
			},
		})
		po := proxyOut{ID: ps.ID, Routes: []json.RawMessage{}, Outbound: []json.RawMessage{}, Targets: []string{}}
		for _, target := range proxy.ServiceTargets {
			po.Targets = append(po.Targets, string(target.Service.Hostname)+":"+
				itoa(int(target.Port.Port))+"/"+string(target.Port.Protocol))
		}
		listeners := cg.Listeners(proxy)
		for _, l := range listeners {
			switch {
			case l.Name == "virtualInbound":
				po.Inbound = mustJSON(t, l)
			case ps.Client && l.Name != "virtualOutbound":
				po.Outbound = append(po.Outbound, mustJSON(t, l))
			}
		}
		if ps.Client {
			for _, r := range cg.RoutesFromListeners(proxy, listeners) {
				po.Routes = append(po.Routes, mustJSON(t, r))
			}
		}
		result.Proxies = append(result.Proxies, po)
	}
	return result
}

// parse converts a YAML stream like crd.ParseInputs does, but with istiod's
// cluster domain suffix (ParseInputs passes none, which leaves short hosts
// unresolved) and istiod's webhook validation; unknown kinds are an error.
func parse(text string) ([]config.Config, error) {
	decoder := kubeyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(text)), 512*1024)
	created := time.Unix(1_700_000_000, 0)
	var out []config.Config
	for i := 0; ; i++ {
		obj := crd.IstioKind{}
		if err := decoder.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if reflect.DeepEqual(obj, crd.IstioKind{}) {
			continue
		}
		gvk := obj.GroupVersionKind()
		s, ok := collections.PilotGatewayAPI().FindByGroupVersionAliasesKind(resource.FromKubernetesGVK(&gvk))
		if !ok {
			return nil, errors.New("unknown kind " + gvk.String())
		}
		cfg, err := crd.ConvertObject(s, &obj, domainSuffix)
		if err != nil {
			return nil, err
		}
		if _, err := s.ValidateConfig(*cfg); err != nil {
			return nil, errors.New(cfg.Name + ": " + err.Error())
		}
		if cfg.Namespace == "" {
			cfg.Namespace = "default"
		}
		// Creation order decides which VirtualService wins a host; keep the stream's.
		cfg.CreationTimestamp = created.Add(time.Duration(i) * time.Second)
		out = append(out, *cfg)
	}
}

// serviceEntry stands in for a Kubernetes Service and its pods.
func serviceEntry(svc serviceSpec) config.Config {
	se := &networking.ServiceEntry{
		Hosts:      []string{svc.Name + "." + svc.Namespace + ".svc." + domainSuffix},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
	}
	if svc.VIP != "" {
		se.Addresses = []string{svc.VIP}
	}
	for _, p := range svc.Ports {
		var appProtocol *string
		if p.AppProtocol != "" {
			appProtocol = &p.AppProtocol
		}
		proto := configkube.ConvertProtocol(p.Port, p.Name, corev1.Protocol(p.Protocol), appProtocol)
		name := p.Name
		if name == "" {
			name = "port-" + itoa(int(p.Port))
		}
		se.Ports = append(se.Ports, &networking.ServicePort{
			Number: uint32(p.Port), Protocol: string(proto), Name: name, TargetPort: p.TargetPort,
		})
	}
	for _, e := range svc.Endpoints {
		se.Endpoints = append(se.Endpoints, &networking.WorkloadEntry{
			Address: e.IP, Labels: e.Labels, ServiceAccount: e.ServiceAccount,
		})
	}
	return config.Config{
		Meta: config.Meta{
			GroupVersionKind:  gvk.ServiceEntry,
			Name:              svc.Name,
			Namespace:         svc.Namespace,
			Domain:            domainSuffix,
			CreationTimestamp: time.Unix(1_600_000_000, 0),
		},
		Spec: se,
	}
}

func mustJSON(t *testing.T, m proto.Message) json.RawMessage {
	b, err := marshal.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
