package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
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

// At is where an attribute was set, for a runtime error about its value ("store.path" read
// only, "router.admin_addr" in use): the attribute's value, or the start of the file when the
// attribute was left to its default.
func (c *Config) At(attr string) hcl.Range {
	if rng, ok := c.Attrs[attr]; ok {
		return rng
	}
	return hcl.Range{Filename: c.File, Start: hcl.InitialPos, End: hcl.InitialPos}
}

// AttrError is a runtime error caused by the value of a configuration attribute; it prints as
// "FILE:LINE:COL: ATTRIBUTE: ERROR".
type AttrError struct {
	Attr  string
	Range hcl.Range
	Err   error
}

func (e *AttrError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %v", e.Range.Filename, e.Range.Start.Line, e.Range.Start.Column, e.Attr, e.Err)
}

func (e *AttrError) Unwrap() error { return e.Err }

// Errorf is an AttrError for attr of this configuration.
func (c *Config) Errorf(attr string, format string, args ...any) error {
	return &AttrError{Attr: attr, Range: c.At(attr), Err: fmt.Errorf(format, args...)}
}
