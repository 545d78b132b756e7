package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// listCatalogue lists everything c's upstream offers, with its base headers
// only, and keeps what it announced in its answer to initialize (its
// capabilities and instructions, which mcpgate's own initialize answer
// federates). Only the lists whose capability the upstream announced are
// called; one answered with -32601 (method not found) lists nothing, since
// resources/templates/list, say, is optional under the resources capability.
func listCatalogue(ctx context.Context, c *upstream.Client, base http.Header) (dispatch.Catalogue, error) {
	var cat dispatch.Catalogue
	var announced struct {
		Capabilities json.RawMessage `json:"capabilities"`
		Instructions string          `json:"instructions"`
	}
	_ = json.Unmarshal(c.InitializeResult(), &announced) // a malformed one announces nothing
	cat.Capabilities, cat.Instructions = announced.Capabilities, announced.Instructions
	caps := capabilities(announced.Capabilities)
	// Each list's caching hint (ttlMs, cacheScope; MCP 2026-07-28) is
	// kept for federation to merge (dispatch.Catalogue.Cache).
	cat.Cache = map[string]dispatch.CacheHint{}
	lists := []struct {
		enabled bool
		method  string
		key     string
		into    *[]json.RawMessage
	}{
		{caps["tools"], "tools/list", "tools", &cat.Tools},
		{caps["resources"], "resources/list", "resources", &cat.Resources},
		{caps["resources"], "resources/templates/list", "resourceTemplates", &cat.ResourceTemplates},
		{caps["prompts"], "prompts/list", "prompts", &cat.Prompts},
	}
	for _, l := range lists {
		if !l.enabled {
			continue
		}
		items, hint, err := listAll(ctx, c, l.method, l.key, base)
		if err != nil {
			return dispatch.Catalogue{}, fmt.Errorf("%s: %w", l.method, err)
		}
		*l.into = items
		if hint != nil {
			cat.Cache[l.method] = *hint
		}
	}
	return cat, nil
}

// capabilities are the names of the capabilities an initialize result's
// capabilities object announces.
func capabilities(announced json.RawMessage) map[string]bool {
	var r map[string]json.RawMessage
	_ = json.Unmarshal(announced, &r)
	caps := map[string]bool{}
	for k := range r {
		caps[k] = true
	}
	return caps
}

// errTooLarge says a listing went beyond MaxListBytes or MaxListItems.
var errTooLarge = errors.New("the listing is too large")

// listAll reads every page of a list method: at most maxPages pages,
// MaxListBytes of results and MaxListItems items in all. hint is the first
// page's caching hint, nil when it gave none.
func listAll(ctx context.Context, c *upstream.Client, method, key string, headers http.Header) (all []json.RawMessage, hint *dispatch.CacheHint, err error) {
	size := 0
	cursor := ""
	for page := 0; page < maxPages; page++ {
		var params any = map[string]any{}
		if cursor != "" {
			params = map[string]string{"cursor": cursor}
		}
		req, err := jsonrpc.NewRequest(json.RawMessage(fmt.Sprint(page+1)), method, params)
		if err != nil {
			return nil, nil, err
		}
		resp, err := c.Call(ctx, req, headers.Clone(), nil)
		if err != nil {
			return nil, nil, err
		}
		if resp.Error != nil {
			if resp.Error.Code == jsonrpc.CodeMethodNotFound && page == 0 {
				return nil, nil, nil // not offered after all: none
			}
			return nil, nil, resp.Error
		}
		if size += len(resp.Result); size > MaxListBytes {
			return nil, nil, fmt.Errorf("%w: more than %d MiB", errTooLarge, MaxListBytes>>20)
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(resp.Result, &body); err != nil {
			return nil, nil, fmt.Errorf("read result: %w", err)
		}
		var items []json.RawMessage
		if raw, ok := body[key]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, nil, fmt.Errorf("read %s: %w", key, err)
			}
		}
		if len(all)+len(items) > MaxListItems {
			return nil, nil, fmt.Errorf("%w: more than %d items", errTooLarge, MaxListItems)
		}
		all = append(all, items...)
		var next string
		_ = json.Unmarshal(body["nextCursor"], &next)
		if page == 0 {
			if h, ok := dispatch.ReadCacheHint(resp.Result); ok {
				hint = &h
			}
		}
		if next == "" {
			return all, hint, nil
		}
		cursor = next
	}
	return nil, nil, fmt.Errorf("%w: more than %d pages", errTooLarge, maxPages)
}
