package main

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeFile checks what can be checked of docker-compose.yml without
// a Docker engine: both services, the replica set, healthchecks, and
// Priora pointed at the replica set.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build struct {
				Context string            `yaml:"context"`
				Args    map[string]string `yaml:"args"`
			} `yaml:"build"`
			Entrypoint  []string          `yaml:"entrypoint"`
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	mongo, priora := c.Services["mongo"], c.Services["priora"]
	start := strings.Join(mongo.Entrypoint, " ")
	if !strings.HasPrefix(mongo.Image, "mongo:7") || !strings.Contains(start, "--replSet") {
		t.Errorf("mongo service = %+v, want mongo:7 as a replica set", mongo)
	}
	// Authentication: a root user, and the key file a replica set with
	// authentication needs; Priora connects with credentials.
	if mongo.Environment["MONGO_INITDB_ROOT_USERNAME"] == "" || !strings.Contains(mongo.Environment["MONGO_INITDB_ROOT_PASSWORD"], "MONGO_PASSWORD") ||
		!strings.Contains(start, "--keyFile") {
		t.Errorf("mongo runs without authentication: %+v", mongo)
	}
	if uri := priora.Environment["MONGODB_URI"]; !strings.Contains(uri, "${MONGO_PASSWORD}@") || !strings.Contains(uri, "authSource=admin") ||
		!strings.Contains(uri, "/priora?") {
		t.Errorf("MONGODB_URI %q lacks credentials or the database name", uri)
	}
	// Volumes: the store's data, the rules file Priora reads, the roster to import.
	mounts := map[string]string{}
	for _, v := range append(mongo.Volumes, priora.Volumes...) {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Fatalf("volume %q", v)
		}
		// source:target or source:target:ro (a source may hold ${VAR:-default}).
		target := parts[len(parts)-1]
		if target == "ro" || target == "rw" {
			target = parts[len(parts)-2]
		}
		mounts[target] = v
	}
	for _, target := range []string{"/data/db", "/data", priora.Environment["PRIORA_RULES"], "/import/roster"} {
		if mounts[target] == "" {
			t.Errorf("no volume mounted at %q (mounts %v)", target, mounts)
		}
	}
	if priora.Build.Args["PRIORA_VERSION"] == "" {
		t.Error("the image build is not given a PRIORA_VERSION")
	}
	if len(mongo.Healthcheck.Test) == 0 || len(priora.Healthcheck.Test) == 0 {
		t.Error("both services need healthchecks")
	}
	if priora.DependsOn["mongo"].Condition != "service_healthy" {
		t.Error("priora must wait for a healthy mongo")
	}
	if uri := priora.Environment["MONGODB_URI"]; !strings.Contains(uri, "replicaSet=") {
		t.Errorf("MONGODB_URI %q does not name the replica set", uri)
	}
	// The healthcheck calls a subcommand that must exist.
	if hc := strings.Join(priora.Healthcheck.Test, " "); !strings.Contains(hc, "/priora healthcheck") {
		t.Errorf("priora healthcheck = %q", hc)
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "./cmd/priora") || !strings.Contains(string(df), "golang:1.26") {
		t.Error("Dockerfile does not build ./cmd/priora with Go 1.26")
	}
	if !strings.Contains(string(df), "-X main.version=${PRIORA_VERSION}") {
		t.Error("Dockerfile does not stamp the release version")
	}
}
