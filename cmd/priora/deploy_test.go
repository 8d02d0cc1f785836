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
			Image       string            `yaml:"image"`
			Build       string            `yaml:"build"`
			Command     []string          `yaml:"command"`
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
	if !strings.HasPrefix(mongo.Image, "mongo:7") || !strings.Contains(strings.Join(mongo.Command, " "), "--replSet") {
		t.Errorf("mongo service = %+v, want mongo:7 as a replica set", mongo)
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
}
