package main

// Semantics: Cilium's policy repository answers flows.

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	cilium "github.com/cilium/proxy/go/cilium/api"
	envoy_config_route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	envoy_type_matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/cilium/cilium/pkg/endpoint/regeneration"
	envoypolicy "github.com/cilium/cilium/pkg/envoy/policy"
	"github.com/cilium/cilium/pkg/identity"
	"github.com/cilium/cilium/pkg/identity/identitymanager"
	ipcachetypes "github.com/cilium/cilium/pkg/ipcache/types"
	k8sConst "github.com/cilium/cilium/pkg/k8s/apis/cilium.io"
	"github.com/cilium/cilium/pkg/labels"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/policy/api"
	policyutils "github.com/cilium/cilium/pkg/policy/utils"
	"github.com/cilium/cilium/pkg/spanstat"
	testidentity "github.com/cilium/cilium/pkg/testutils/identity"
	testpolicy "github.com/cilium/cilium/pkg/testutils/policy"
	"github.com/cilium/cilium/pkg/u8proto"
)

// pod is one side of a flow: a pod of a namespace running as a ServiceAccount.
type pod struct {
	Namespace      string            `json:"namespace"`
	ServiceAccount string            `json:"serviceAccount"`
	Labels         map[string]string `json:"labels"`
}

type httpRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
}

type flow struct {
	Source      pod          `json:"source"`
	Destination pod          `json:"destination"`
	Protocol    string       `json:"protocol"`
	Port        uint16       `json:"port"`
	HTTP        *httpRequest `json:"http"`
}

type world struct {
	// Objects: every object of a translation; only cilium.io/v2
	// CiliumNetworkPolicies are loaded, the rest is ignored.
	Objects []json.RawMessage `json:"objects"`
	Flows   []flow            `json:"flows"`
}

// direction is the policy-map entry of one side of a flow.
type direction struct {
	// Verdict: "allow", "deny" or "redirect" (allowed at L4, sent to the proxy).
	Verdict string `json:"verdict"`
	// Enforced: some policy selects this endpoint in this direction, so the
	// endpoint is default-deny; false means Cilium's allow-all default.
	Enforced bool `json:"enforced"`
	// L7: for a redirect, "allow" or "deny" from the HTTP rules; else "".
	L7 string `json:"l7"`
}

type answer struct {
	Ingress direction `json:"ingress"`
	Egress  direction `json:"egress"`
	// Allowed: both directions let the flow (and its request, if redirected) through.
	Allowed bool `json:"allowed"`
	// Explicit: allowed, and by an enforced ingress policy rather than by
	// the allow-all default of an unselected destination.
	Explicit bool `json:"explicit"`
}

func answerWorlds(logger *slog.Logger, input []byte) ([][]answer, error) {
	var worlds []world
	if err := json.Unmarshal(input, &worlds); err != nil {
		return nil, err
	}
	out := make([][]answer, 0, len(worlds))
	for i, w := range worlds {
		answers, err := answerWorld(logger, w)
		if err != nil {
			return nil, fmt.Errorf("world %d: %w", i, err)
		}
		out = append(out, answers)
	}
	return out, nil
}

// identityLabels are the security-identity labels the agent derives for a pod:
// its own labels plus the ServiceAccount, namespace, namespace-name and
// cluster labels (constants of pkg/k8s/apis/cilium.io/const.go), all of
// source "k8s". Without the cluster label, selectors that Parse scoped to the
// local cluster would select nothing.
func identityLabels(p pod) labels.LabelArray {
	lbls := labels.LabelArray{
		labels.NewLabel(k8sConst.PolicyLabelServiceAccount, p.ServiceAccount, labels.LabelSourceK8s),
		labels.NewLabel(k8sConst.PodNamespaceLabel, p.Namespace, labels.LabelSourceK8s),
		labels.NewLabel(k8sConst.PodNamespaceMetaLabelsPrefix+"kubernetes.io/metadata.name", p.Namespace, labels.LabelSourceK8s),
		labels.NewLabel(k8sConst.PolicyLabelCluster, clusterName, labels.LabelSourceK8s),
	}
	for k, v := range p.Labels {
		lbls = append(lbls, labels.NewLabel(k, v, labels.LabelSourceK8s))
	}
	return lbls.Sort()
}

// owner is the endpoint whose policy is distilled (policy.PolicyOwner).
type owner struct{ id uint64 }

func (o *owner) GetID() uint64                                     { return o.id }
func (o *owner) GetNamedPort(bool, string, u8proto.U8proto) uint16 { return 0 }
func (o *owner) PolicyDebug(string, ...any)                        {}
func (o *owner) IsHost() bool                                      { return false }
func (o *owner) PreviousMapState() *policy.MapState                { return nil }
func (o *owner) RegenerateIfAlive(*regeneration.ExternalRegenerationMetadata) <-chan bool {
	ch := make(chan bool)
	close(ch)
	return ch
}

type stats struct{ wait, calc spanstat.SpanStat }

func (s *stats) WaitingForPolicyRepository() *spanstat.SpanStat { return &s.wait }
func (s *stats) SelectorPolicyCalculation() *spanstat.SpanStat  { return &s.calc }

func answerWorld(logger *slog.Logger, w world) ([]answer, error) {
	// One identity per distinct label set, as the identity allocator gives.
	ids := map[string]*identity.Identity{}
	idOf := func(p pod) *identity.Identity {
		lbls := identityLabels(p)
		key := lbls.String()
		if id, ok := ids[key]; ok {
			return id
		}
		id := identity.NewIdentityFromLabelArray(identity.NumericIdentity(1000+len(ids)), lbls)
		ids[key] = id
		return id
	}
	type ends struct{ src, dst *identity.Identity }
	flowIDs := make([]ends, len(w.Flows))
	for i, f := range w.Flows {
		flowIDs[i] = ends{idOf(f.Source), idOf(f.Destination)}
	}
	initial := identity.IdentityMap{}
	for _, id := range ids {
		initial[id.ID] = id.LabelArray
	}

	idManager := identitymanager.NewIDManager(logger)
	repo := policy.NewPolicyRepository(logger, initial, nil,
		envoypolicy.NewEnvoyL7RulesTranslator(logger, nil), idManager, testpolicy.NewPolicyMetricsNoop())
	repo.GetSelectorCache().SetLocalIdentityNotifier(testidentity.NewDummyIdentityNotifier())

	for i, raw := range w.Objects {
		var meta typeMeta
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
		if meta.APIVersion != "cilium.io/v2" || meta.Kind != "CiliumNetworkPolicy" {
			continue
		}
		rules, _, err := parseCNP(logger, raw)
		if err != nil {
			return nil, fmt.Errorf("CiliumNetworkPolicy %s/%s: %w", meta.Metadata.Namespace, meta.Metadata.Name, err)
		}
		// The agent's policy watcher imports a CNP as one resource.
		resource := ipcachetypes.NewResourceID(ipcachetypes.ResourceKindCNP, meta.Metadata.Namespace, meta.Metadata.Name)
		repo.ReplaceByResource(policyutils.RulesToPolicyEntries(rules), resource)
	}
	for _, id := range ids {
		idManager.Add(id)
	}

	// Distilled policy per identity, computed once per world.
	cache := map[identity.NumericIdentity]*policy.EndpointPolicy{}
	var all []*policy.EndpointPolicy
	distill := func(id *identity.Identity) (*policy.EndpointPolicy, error) {
		if epp, ok := cache[id.ID]; ok {
			return epp, nil
		}
		own := &owner{id: uint64(id.ID)}
		selPolicy, _, err := repo.GetSelectorPolicy(id, 0, &stats{}, own.id)
		if err != nil {
			return nil, err
		}
		// Realize every redirect the policy asks for, as the endpoint does
		// before distilling; unrealized redirects would leave no entry.
		redirects := map[string]uint16{}
		for l4, tuple := range selPolicy.RedirectFilters() {
			pid := policy.ProxyID(uint16(own.id), l4.Ingress, string(l4.Protocol), l4.Port, tuple.Policy.GetListener())
			if _, ok := redirects[pid]; !ok {
				redirects[pid] = uint16(20000 + len(redirects))
			}
		}
		epp := selPolicy.DistillPolicy(logger, own, redirects)
		if err := epp.Ready(); err != nil {
			return nil, err
		}
		cache[id.ID] = epp
		all = append(all, epp)
		return epp, nil
	}
	defer func() {
		for _, epp := range all {
			epp.Detach(logger)
		}
	}()

	answers := make([]answer, 0, len(w.Flows))
	for i, f := range w.Flows {
		proto, err := u8proto.ParseProtocol(f.Protocol)
		if err != nil || proto == u8proto.ANY {
			return nil, fmt.Errorf("flow %d: protocol %q", i, f.Protocol)
		}
		if f.Port == 0 {
			return nil, fmt.Errorf("flow %d: port 0", i)
		}
		src, dst := flowIDs[i].src, flowIDs[i].dst
		dstPolicy, err := distill(dst)
		if err != nil {
			return nil, err
		}
		srcPolicy, err := distill(src)
		if err != nil {
			return nil, err
		}
		in, err := lookup(dstPolicy, true, src.ID, proto, f)
		if err != nil {
			return nil, fmt.Errorf("flow %d: %w", i, err)
		}
		out, err := lookup(srcPolicy, false, dst.ID, proto, f)
		if err != nil {
			return nil, fmt.Errorf("flow %d: %w", i, err)
		}
		passes := func(d direction) bool { return d.Verdict == "allow" || d.L7 == "allow" }
		a := answer{Ingress: in, Egress: out, Allowed: passes(in) && passes(out)}
		a.Explicit = a.Allowed && in.Enforced
		answers = append(answers, a)
	}
	return answers, nil
}

// lookup reads the policy-map entry for the peer, protocol and port, the
// way the datapath does (longest match over identity and port prefix;
// no entry is a deny), then evaluates the proxy's HTTP rules on a redirect.
func lookup(epp *policy.EndpointPolicy, ingress bool, peer identity.NumericIdentity, proto u8proto.U8proto, f flow) (direction, error) {
	key := policy.EgressKey()
	enforced := epp.SelectorPolicy.EgressPolicyEnabled
	if ingress {
		key = policy.IngressKey()
		enforced = epp.SelectorPolicy.IngressPolicyEnabled
	}
	entry, _, _ := epp.Lookup(key.WithIdentity(peer).WithPortProto(proto, f.Port))
	d := direction{Enforced: enforced}
	switch {
	case entry.IsDeny():
		d.Verdict = "deny"
	case entry.IsRedirectEntry():
		d.Verdict = "redirect"
		ok, err := proxyAllows(epp, ingress, peer, proto, f)
		if err != nil {
			return d, err
		}
		d.L7 = map[bool]string{true: "allow", false: "deny"}[ok]
	default:
		d.Verdict = "allow"
	}
	return d, nil
}

// proxyAllows answers for a redirected flow what the proxy's network policy
// (the rules pkg/envoy/xds_server.go sends for this endpoint) answers: every
// L4 filter of the direction that covers the port (port-specific, ranges and
// port 0 wildcards) contributes its rules for the selectors that select the
// peer; a deny wins, an L3/L4-only rule allows everything, an HTTP rule
// allows the requests it matches. A flow that is not an HTTP request cannot
// pass the HTTP parser.
func proxyAllows(epp *policy.EndpointPolicy, ingress bool, peer identity.NumericIdentity, proto u8proto.U8proto, f flow) (bool, error) {
	if f.HTTP == nil || proto != u8proto.TCP {
		return false, nil
	}
	l4 := epp.SelectorPolicy.L4Policy.Egress
	if ingress {
		l4 = epp.SelectorPolicy.L4Policy.Ingress
	}
	allowed := false
	for filter := range l4.Filters() {
		if filter.PortName != "" {
			return false, fmt.Errorf("named port %q is not modelled", filter.PortName)
		}
		if filter.Protocol != api.ProtoAny && filter.U8Proto != proto {
			continue
		}
		if filter.Port != 0 && (f.Port < filter.Port || f.Port > max(filter.Port, filter.EndPort)) {
			continue
		}
		for sel, sp := range filter.PerSelectorPolicies {
			if !sel.IsWildcard() && !sel.Selects(peer) {
				continue
			}
			switch {
			case sp == nil:
				allowed = true
			case sp.IsDeny():
				return false, nil
			case sp.L7Parser != policy.ParserTypeHTTP && sp.L7Parser != policy.ParserTypeNone:
				return false, fmt.Errorf("L7 parser %q is not modelled", sp.L7Parser)
			case len(sp.HTTP) == 0:
				allowed = true
			default:
				rules := sp.EnvoyHTTPRules()
				if rules == nil {
					return false, fmt.Errorf("HTTP rules were not translated for Envoy")
				}
				ok, err := httpRulesMatch(rules, f.HTTP)
				if err != nil {
					return false, err
				}
				allowed = allowed || ok
			}
		}
	}
	return allowed, nil
}

// httpRulesMatch: one rule of the list must match; a rule matches when all of
// its Envoy header matchers match. Cilium's HeaderMatches with a mismatch
// action other than FAIL (LOG, ADD, DELETE, REPLACE) only log or edit
// headers and never reject (FAIL ones are translated into header matchers by
// pkg/envoy/policy/envoy_l7_rules_translator.go), so they do not decide.
func httpRulesMatch(rules *cilium.HttpNetworkPolicyRules, req *httpRequest) (bool, error) {
	headers := map[string]string{":method": req.Method, ":path": req.Path}
	for k, v := range req.Headers {
		headers[strings.ToLower(k)] = v
	}
	for _, rule := range rules.GetHttpRules() {
		ok := true
		for _, m := range rule.GetHeaders() {
			match, err := headerMatches(m, headers)
			if err != nil {
				return false, err
			}
			if !match {
				ok = false
				break
			}
		}
		for _, hm := range rule.GetHeaderMatches() {
			if hm.GetMismatchAction() == cilium.HeaderMatch_FAIL_ON_MISMATCH {
				return false, fmt.Errorf("HeaderMatch %q with FAIL_ON_MISMATCH is not modelled", hm.GetName())
			}
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// headerMatches evaluates one Envoy HeaderMatcher (envoy/config/route/v3)
// on a request whose header names are lower case, as Envoy stores them.
// Safe regexes are RE2 full matches, which Go's regexp (RE2 syntax) gives
// with explicit anchors.
func headerMatches(m *envoy_config_route.HeaderMatcher, headers map[string]string) (bool, error) {
	name := strings.ToLower(m.GetName())
	if name == ":authority" {
		return false, fmt.Errorf("host rules are not modelled")
	}
	value, present := headers[name]
	var result bool
	switch spec := m.GetHeaderMatchSpecifier().(type) {
	case *envoy_config_route.HeaderMatcher_PresentMatch:
		result = present == spec.PresentMatch
	case *envoy_config_route.HeaderMatcher_StringMatch:
		if !present {
			// An absent header never matches a string matcher, inverted or not
			// (Envoy's HeaderUtility::matchHeaders).
			return false, nil
		}
		ok, err := stringMatches(spec.StringMatch, value)
		if err != nil {
			return false, err
		}
		result = ok
	default:
		return false, fmt.Errorf("header matcher %T is not modelled", spec)
	}
	if m.GetInvertMatch() {
		result = !result
	}
	return result, nil
}

func stringMatches(sm *envoy_type_matcher.StringMatcher, value string) (bool, error) {
	if sm.GetIgnoreCase() {
		return false, fmt.Errorf("ignore_case string matchers are not modelled")
	}
	switch p := sm.GetMatchPattern().(type) {
	case *envoy_type_matcher.StringMatcher_Exact:
		return value == p.Exact, nil
	case *envoy_type_matcher.StringMatcher_Prefix:
		return strings.HasPrefix(value, p.Prefix), nil
	case *envoy_type_matcher.StringMatcher_Suffix:
		return strings.HasSuffix(value, p.Suffix), nil
	case *envoy_type_matcher.StringMatcher_Contains:
		return strings.Contains(value, p.Contains), nil
	case *envoy_type_matcher.StringMatcher_SafeRegex:
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			// Envoy rejects the whole policy update; nothing passes.
			return false, fmt.Errorf("regex %q: %w", p.SafeRegex.GetRegex(), err)
		}
		return re.MatchString(value), nil
	default:
		return false, fmt.Errorf("string matcher %T is not modelled", p)
	}
}
