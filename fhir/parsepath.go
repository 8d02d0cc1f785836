package fhir

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	bcr "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// google/fhir's error locations are paths through its protocol buffers,
// not FHIRPath: a resource inside Bundle.entry.resource or contained gets
// an extra step naming its type ("resource.Claim.created") or the proto
// field holding it ("resource.coverage"), and an unknown element is
// reported at its parent without its name. parseLocation turns such a
// location into a FHIRPath to the element and names the unknown elements.

var containedResource = (&bcr.ContainedResource{}).ProtoReflect().Descriptor()

var pathStep = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$`)

// located is one finding at a FHIRPath location.
type located struct {
	expr  string
	names []string // unknown element names at expr, when asked for
}

// parseLocation maps google/fhir location loc in the decoded document
// doc to a FHIRPath; with unknown set it also lists the members of the
// object there that are not FHIR elements.
func parseLocation(doc any, loc string, unknown bool) located {
	if loc == "" {
		return located{expr: loc}
	}
	steps := strings.Split(loc, ".")
	obj, _ := doc.(map[string]any)
	rt, _ := obj["resourceType"].(string)
	if len(steps) == 0 || steps[0] != rt {
		return located{expr: loc}
	}
	md := resourceDescriptor(rt)
	out := []string{rt}
	var cur any = obj
	for i := 1; i < len(steps); i++ {
		m := pathStep.FindStringSubmatch(steps[i])
		if m == nil {
			return located{expr: loc}
		}
		name := m[1]
		if o, ok := cur.(map[string]any); ok {
			if inner, _ := o["resourceType"].(string); inner != "" && len(out) > 1 && isTypeStep(name, inner) {
				continue // google/fhir's step into the contained resource's type
			}
		}
		o, ok := cur.(map[string]any)
		if !ok {
			return located{expr: loc}
		}
		cur = o[name]
		if m[2] != "" {
			arr, ok := cur.([]any)
			n, _ := strconv.Atoi(m[2])
			if !ok || n >= len(arr) {
				return located{expr: loc}
			}
			cur = arr[n]
		}
		md = childDescriptor(md, name, cur)
		out = append(out, steps[i])
	}
	res := located{expr: strings.Join(out, ".")}
	if o, ok := cur.(map[string]any); ok && unknown && md != nil {
		for k := range o {
			if !knownMember(md, k) {
				res.names = append(res.names, k)
			}
		}
		sort.Strings(res.names)
	}
	return res
}

// isTypeStep reports whether a location step names the type of the
// resource it is in: its resourceType, or the ContainedResource field
// ("coverage", "practitioner_role").
func isTypeStep(step, resourceType string) bool {
	return step == resourceType || strings.EqualFold(strings.ReplaceAll(step, "_", ""), resourceType)
}

func resourceDescriptor(rt string) protoreflect.MessageDescriptor {
	fs := containedResource.Fields()
	for i := 0; i < fs.Len(); i++ {
		if f := fs.Get(i); f.Message() != nil && string(f.Message().Name()) == rt {
			return f.Message()
		}
	}
	return nil
}

// childDescriptor is the message describing member name of md, whose JSON
// value is v (a resource in Bundle.entry.resource or contained is
// described by its resourceType).
func childDescriptor(md protoreflect.MessageDescriptor, name string, v any) protoreflect.MessageDescriptor {
	if o, ok := v.(map[string]any); ok {
		if rt, _ := o["resourceType"].(string); rt != "" {
			return resourceDescriptor(rt)
		}
	}
	if md == nil {
		return nil
	}
	f := memberField(md, name)
	if f == nil || f.Message() == nil {
		return nil
	}
	return f.Message()
}

// memberField finds the field of md that JSON member name maps to,
// following choice elements (valueString → value, choice string).
func memberField(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if f := md.Fields().ByJSONName(name); f != nil {
		return f
	}
	fs := md.Fields()
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		base := f.JSONName()
		if f.Message() == nil || !strings.HasPrefix(name, base) || len(name) == len(base) {
			continue
		}
		typ := name[len(base):]
		choice := f.Message().Oneofs().ByName("choice")
		if choice == nil {
			continue
		}
		for j := 0; j < choice.Fields().Len(); j++ {
			c := choice.Fields().Get(j)
			if strings.EqualFold(c.JSONName(), typ) {
				return c
			}
		}
	}
	return nil
}

// knownMember reports whether JSON member k is a FHIR element of the
// object md describes.
func knownMember(md protoreflect.MessageDescriptor, k string) bool {
	switch k {
	case "resourceType", "fhir_comments":
		return true
	}
	k = strings.TrimPrefix(k, "_")
	if memberField(md, k) != nil {
		return true
	}
	// Reference.reference is a oneof of typed ids in google/fhir's protos.
	return md.Name() == "Reference" && k == "reference"
}
