package config

import (
	"fmt"
	"strings"
)

// Summary is one line such as "1 cluster, 2 sources, 1 target, 0 modules, 1 route, 3 tests".
func (c *Config) Summary() string {
	counts := []struct {
		n    int
		noun string
	}{
		{len(c.Clusters), "cluster"}, {len(c.Sources), "source"}, {len(c.Targets), "target"},
		{len(c.Modules), "module"}, {len(c.Routes), "route"}, {len(c.Tests), "test"},
	}
	parts := make([]string, 0, len(counts))
	for _, count := range counts {
		noun := count.noun
		if count.n != 1 {
			noun += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s", count.n, noun))
	}
	return strings.Join(parts, ", ")
}

// Cluster returns the cluster named name, or nil.
func (c *Config) Cluster(name string) *ClusterSpec { return find(c.Clusters, name, clusterName) }

// Source returns the source named name, or nil.
func (c *Config) Source(name string) *SourceSpec { return find(c.Sources, name, sourceName) }

// Target returns the target named name, or nil.
func (c *Config) Target(name string) *TargetSpec { return find(c.Targets, name, targetName) }

// Module returns the module named name, or nil.
func (c *Config) Module(name string) *ModuleSpec { return find(c.Modules, name, moduleName) }

// Route returns the route named name, or nil.
func (c *Config) Route(name string) *RouteSpec { return find(c.Routes, name, routeName) }

// Test returns the test named name, or nil.
func (c *Config) Test(name string) *TestSpec { return find(c.Tests, name, testName) }

// RoutesFrom returns the routes reading source, in declaration order.
func (c *Config) RoutesFrom(source string) []*RouteSpec {
	var routes []*RouteSpec
	for i := range c.Routes {
		if c.Routes[i].Source == source {
			routes = append(routes, &c.Routes[i])
		}
	}
	return routes
}

// find is a linear search: configurations hold tens of blocks, and names are unique once loaded.
func find[T any](list []T, name string, nameOf func(*T) string) *T {
	for i := range list {
		if nameOf(&list[i]) == name {
			return &list[i]
		}
	}
	return nil
}

func clusterName(s *ClusterSpec) string { return s.Name }
func sourceName(s *SourceSpec) string   { return s.Name }
func targetName(s *TargetSpec) string   { return s.Name }
func moduleName(s *ModuleSpec) string   { return s.Name }
func routeName(s *RouteSpec) string     { return s.Name }
func testName(s *TestSpec) string       { return s.Name }
