// Command pkggen turns FHIR NPM package tarballs into the compact
// definitions store embedded by package profiles.
//
// It keeps only StructureDefinition, ValueSet and CodeSystem resources,
// drops narrative, documentation and mappings, and writes:
//
//	defs.bin   each resource as minified JSON, individually deflated
//	index.json packages (name, version, dependencies) and one row per
//	           resource: kind, url, version, package, offset, length
//
// Each resource is compressed on its own so that the registry can index
// everything at start without inflating anything, and inflate a
// definition only when it is first used.
//
// Usage (from the profiles directory, see generate.go):
//
//	go run ./internal/pkggen -o packages ../../shared/igs/*.tgz
package main

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type pkgInfo struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Deps    map[string]string `json:"deps,omitempty"`
	File    string            `json:"file"`
}

type row struct {
	Kind    string `json:"k"`
	URL     string `json:"u"`
	Version string `json:"v,omitempty"`
	Type    string `json:"t,omitempty"` // SD type
	Pkg     int    `json:"p"`
	Off     int64  `json:"o"`
	Len     int    `json:"n"`
}

type index struct {
	Packages  []pkgInfo `json:"packages"`
	Resources []row     `json:"resources"`
}

func main() {
	out := flag.String("o", "packages", "output directory")
	flag.Parse()
	var idx index
	var blob bytes.Buffer
	files := flag.Args()
	sort.Strings(files)
	for _, f := range files {
		if err := addPackage(&idx, &blob, f); err != nil {
			log.Fatalf("%s: %v", f, err)
		}
	}
	if err := os.WriteFile(filepath.Join(*out, "defs.bin"), blob.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	ij, err := json.Marshal(idx)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "index.json"), ij, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d packages, %d resources, %d bytes\n", len(idx.Packages), len(idx.Resources), blob.Len())
}

func addPackage(idx *index, blob *bytes.Buffer, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	pi := len(idx.Packages)
	idx.Packages = append(idx.Packages, pkgInfo{File: filepath.Base(file)})
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := h.Name
		if !strings.HasPrefix(name, "package/") || strings.Contains(strings.TrimPrefix(name, "package/"), "/") || !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if name == "package/package.json" {
			var p struct {
				Name    string            `json:"name"`
				Version string            `json:"version"`
				Deps    map[string]string `json:"dependencies"`
			}
			if err := json.Unmarshal(data, &p); err != nil {
				return err
			}
			idx.Packages[pi].Name, idx.Packages[pi].Version, idx.Packages[pi].Deps = p.Name, p.Version, p.Deps
			continue
		}
		var res map[string]any
		if err := json.Unmarshal(data, &res); err != nil {
			continue // not a resource (e.g. .index.json variants)
		}
		kind, _ := res["resourceType"].(string)
		switch kind {
		case "StructureDefinition":
			stripSD(res)
		case "ValueSet":
			stripVS(res)
		case "CodeSystem":
			stripCS(res)
		default:
			continue
		}
		url, _ := res["url"].(string)
		if url == "" {
			continue
		}
		ver, _ := res["version"].(string)
		typ, _ := res["type"].(string)
		min, err := json.Marshal(res)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestCompression)
		w.Write(min)
		w.Close()
		idx.Resources = append(idx.Resources, row{Kind: kind, URL: url, Version: ver, Type: typ, Pkg: pi, Off: int64(blob.Len()), Len: z.Len()})
		blob.Write(z.Bytes())
	}
	return nil
}

func keep(m map[string]any, keys ...string) {
	ok := map[string]bool{}
	for _, k := range keys {
		ok[k] = true
	}
	for k := range m {
		if !ok[k] {
			delete(m, k)
		}
	}
}

func stripSD(sd map[string]any) {
	keep(sd, "resourceType", "url", "version", "name", "type", "kind", "abstract", "baseDefinition", "derivation", "context", "contextInvariant", "snapshot", "status")
	snap, _ := sd["snapshot"].(map[string]any)
	if snap == nil {
		return
	}
	els, _ := snap["element"].([]any)
	for _, e := range els {
		el, _ := e.(map[string]any)
		for k := range el {
			switch {
			case k == "id", k == "path", k == "sliceName", k == "min", k == "max", k == "type",
				k == "contentReference", k == "slicing", k == "isModifier", k == "maxLength",
				k == "constraint", k == "binding", k == "base",
				strings.HasPrefix(k, "fixed"), strings.HasPrefix(k, "pattern"),
				strings.HasPrefix(k, "minValue"), strings.HasPrefix(k, "maxValue"):
			default:
				delete(el, k)
			}
		}
		if b, ok := el["base"].(map[string]any); ok {
			keep(b, "max")
		}
		if b, ok := el["binding"].(map[string]any); ok {
			keep(b, "strength", "valueSet")
		}
		if cs, ok := el["constraint"].([]any); ok {
			for _, c := range cs {
				if cm, ok := c.(map[string]any); ok {
					keep(cm, "key", "severity", "human", "expression", "source")
				}
			}
		}
		if sl, ok := el["slicing"].(map[string]any); ok {
			delete(sl, "description")
		}
		if ts, ok := el["type"].([]any); ok {
			for _, t := range ts {
				if tm, ok := t.(map[string]any); ok {
					keep(tm, "code", "profile", "targetProfile", "aggregation")
				}
			}
		}
	}
	keep(snap, "element")
}

func stripVS(vs map[string]any) {
	keep(vs, "resourceType", "url", "version", "name", "compose", "expansion", "status")
	if exp, ok := vs["expansion"].(map[string]any); ok {
		keep(exp, "contains", "total")
		stripContains(exp)
	}
	if c, ok := vs["compose"].(map[string]any); ok {
		for _, k := range []string{"include", "exclude"} {
			incs, _ := c[k].([]any)
			for _, i := range incs {
				im, _ := i.(map[string]any)
				keep(im, "system", "version", "concept", "filter", "valueSet")
				if cs, ok := im["concept"].([]any); ok {
					for _, cc := range cs {
						if cm, ok := cc.(map[string]any); ok {
							keep(cm, "code")
						}
					}
				}
			}
		}
		keep(c, "include", "exclude", "inactive")
	}
}

func stripContains(m map[string]any) {
	cs, _ := m["contains"].([]any)
	for _, c := range cs {
		if cm, ok := c.(map[string]any); ok {
			keep(cm, "system", "code", "contains", "abstract")
			stripContains(cm)
		}
	}
}

func stripCS(cs map[string]any) {
	keep(cs, "resourceType", "url", "version", "name", "content", "caseSensitive", "hierarchyMeaning", "concept", "status", "valueSet")
	stripConcepts(cs)
}

func stripConcepts(m map[string]any) {
	cs, _ := m["concept"].([]any)
	for _, c := range cs {
		if cm, ok := c.(map[string]any); ok {
			keep(cm, "code", "concept")
			stripConcepts(cm)
		}
	}
}
