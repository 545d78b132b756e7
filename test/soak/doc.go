// Package soak holds the bounded soak test: a real mcpgate binary under
// load from 32 /mcp clients while its upstreams churn, admin requests run
// and an upstream is deleted and registered again (-soak.duration for
// longer runs).
package soak
