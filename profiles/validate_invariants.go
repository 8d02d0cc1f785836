package profiles

// Validation of invariants.

// nativeInvariants are checked in Go (or deliberately not at all) instead
// of through FHIRPath.
var nativeInvariants = map[string]string{
	"ele-1": "checked natively: empty objects, arrays and values are structure errors",
	"ext-1": "checked natively in extension()",
	"txt-1": "narrative XHTML is not validated",
	"txt-2": "narrative XHTML is not validated",
	"dom-6": "best practice (narrative) only",
}

func (x *run) invariants(e *elem, d *edef, src string, more ...[]constraint) {
	seen := map[string]bool{}
	check := func(c constraint) {
		if seen[c.key] || nativeInvariants[c.key] != "" {
			return
		}
		seen[c.key] = true
		n, err := x.r.compileExpr(c.expr)
		if err != nil {
			// None does (TestEveryConstraintIsEvaluated); should a new
			// package bring one, it is reported, not skipped in silence.
			x.add(SeverityWarning, "not-supported", e, src, "Constraint %s was not evaluated: %v", c.key, err)
			return
		}
		res := e.resource()
		root := res
		if res != nil && res.parent != nil && res.fname == "contained" {
			root = res.parent.resource()
		}
		env := &fpEnv{r: x.r, pkg: d.sd.pkg, resource: res, rootRes: root, resolve: x.resolveRef, this: []fpValue{{e: e}}}
		out, err := env.eval(n, env.this)
		if err != nil {
			x.add(SeverityWarning, "not-supported", e, src, "Constraint %s could not be evaluated: %v", c.key, err)
			return
		}
		if b, ok := toBool(out); ok && !b {
			sev := SeverityError
			if c.severity == "warning" {
				sev = SeverityWarning
			}
			x.add(sev, "invariant", e, src, "Constraint failed: %s: '%s' (%s)", c.key, c.human, c.expr)
		}
	}
	for _, c := range d.constraints {
		check(c)
	}
	for _, cs := range more {
		for _, c := range cs {
			check(c)
		}
	}
}
