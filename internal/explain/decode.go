package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// inputCase is one decoded input line.
type inputCase struct {
	request  http.Header
	base     []passthrough.Header
	global   *[]string // global_allowlist; nil: the env list of the settings
	upstream passthrough.Upstream
	own      *[]string // upstream.passthrough_headers; nil inherits the global list
	settings overrides
}

// overrides are a case's "settings": bits of the switches it sets, and their values.
type overrides struct {
	set, value uint8
}

// The switches a case may override, as bits of overrides.
const (
	switchPassthrough uint8 = 1 << iota
	switchOverwrite
	switchAuthenticates
)

// apply returns s with the overrides applied.
func (o overrides) apply(s passthrough.Settings) passthrough.Settings {
	pick := func(bit uint8, dflt bool) bool {
		if o.set&bit != 0 {
			return o.value&bit != 0
		}
		return dflt
	}
	s.EnableHeaderPassthrough = pick(switchPassthrough, s.EnableHeaderPassthrough)
	s.EnableOverwriteBaseHeaders = pick(switchOverwrite, s.EnableOverwriteBaseHeaders)
	s.AuthenticatesClients = pick(switchAuthenticates, s.AuthenticatesClients)
	return s
}

// Field names of the input.
const (
	fieldRequest  = "request_headers"
	fieldBase     = "base_headers"
	fieldGlobal   = "global_allowlist"
	fieldUpstream = "upstream"
	fieldSettings = "settings"
)

// caseDecoder reads one line with json.Decoder's token stream, so that the
// order of object keys is kept: in request_headers, "if a name repeats, the
// later value wins" (spec §2) must hold for "X-A" followed by "x-a".
type caseDecoder struct {
	dec *json.Decoder
}

// decodeCase decodes one input line. Errors name the field at fault.
func decodeCase(line []byte) (inputCase, error) {
	d := caseDecoder{json.NewDecoder(bytes.NewReader(line))}
	var c inputCase
	if err := d.open('{', "", "a JSON object"); err != nil {
		return c, err
	}
	var seen []string
	for d.dec.More() {
		key, err := d.key()
		if err != nil {
			return c, err
		}
		if slices.Contains(seen, key) {
			return c, fmt.Errorf("field %s: given twice", key)
		}
		seen = append(seen, key)
		switch key {
		case fieldRequest:
			c.request = make(http.Header)
			err = d.headers(fieldRequest, func(name, value string) {
				c.request.Add(http.CanonicalHeaderKey(name), value)
			})
		case fieldBase:
			err = d.headers(fieldBase, func(name, value string) {
				c.base = append(c.base, passthrough.Header{Name: name, Value: value})
			})
		case fieldGlobal:
			c.global, err = d.list(fieldGlobal)
		case fieldUpstream:
			err = d.upstream(&c)
		case fieldSettings:
			err = d.settings(&c.settings)
		default:
			return c, fmt.Errorf("unknown field %q (want %s)", key,
				strings.Join([]string{fieldRequest, fieldBase, fieldGlobal, fieldUpstream, fieldSettings}, ", "))
		}
		if err != nil {
			return c, err
		}
	}
	if err := d.close(""); err != nil {
		return c, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return c, errors.New("unexpected text after the case's closing brace")
	}
	return c, nil
}

// token returns the next token; field names where it is, for errors.
func (d caseDecoder) token(field string) (json.Token, error) {
	tok, err := d.dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, inField(field, fmt.Errorf("invalid JSON: %w", err))
	}
	return tok, nil
}

// open reads the opening delimiter of a value that must be an object or a list.
// want describes the value for the error when it is something else.
func (d caseDecoder) open(delim json.Delim, field, want string) error {
	tok, err := d.token(field)
	if err != nil {
		return err
	}
	if tok != delim {
		return inField(field, fmt.Errorf("got %s, want %s", kind(tok), want))
	}
	return nil
}

// close reads the closing delimiter of an object or list whose More is false.
func (d caseDecoder) close(field string) error {
	_, err := d.token(field)
	return err
}

// key reads an object key.
func (d caseDecoder) key() (string, error) {
	tok, err := d.token("")
	if err != nil {
		return "", err
	}
	return tok.(string), nil // inside an object, json.Decoder returns keys as strings
}

// str reads a value that must be a string.
func (d caseDecoder) str(field string) (string, error) {
	tok, err := d.token(field)
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", inField(field, fmt.Errorf("got %s, want a string", kind(tok)))
	}
	return s, nil
}

// boolean reads a value that must be true or false.
func (d caseDecoder) boolean(field string) (bool, error) {
	tok, err := d.token(field)
	if err != nil {
		return false, err
	}
	b, ok := tok.(bool)
	if !ok {
		return false, inField(field, fmt.Errorf("got %s, want true or false", kind(tok)))
	}
	return b, nil
}

// headers reads headers written as an object (keys in order) or as a list
// of [name, value] pairs, which can repeat a name exactly; null is none.
// Names are data: they need not be valid HTTP tokens.
func (d caseDecoder) headers(field string, add func(name, value string)) error {
	const want = "an object or a list of [name, value] pairs"
	tok, err := d.token(field)
	if err != nil {
		return err
	}
	switch tok {
	case nil:
		return nil
	case json.Delim('{'):
		for d.dec.More() {
			name, err := d.key()
			if err != nil {
				return err
			}
			value, err := d.str(field + "." + name)
			if err != nil {
				return err
			}
			add(name, value)
		}
	case json.Delim('['):
		for i := 0; d.dec.More(); i++ {
			at := fmt.Sprintf("%s[%d]", field, i)
			if err := d.open('[', at, "a [name, value] pair"); err != nil {
				return err
			}
			name, err := d.str(at + "[0]")
			if err != nil {
				return err
			}
			value, err := d.str(at + "[1]")
			if err != nil {
				return err
			}
			if d.dec.More() {
				return inField(at, errors.New("want a [name, value] pair, got more than two entries"))
			}
			if err := d.close(at); err != nil {
				return err
			}
			add(name, value)
		}
	default:
		return inField(field, fmt.Errorf("got %s, want %s", kind(tok), want))
	}
	return d.close(field)
}

// list reads a list of header names as the admin API does
// (passthrough.DecodeList): null (nil, inherit), a list of names, or a
// string holding a comma list or a JSON array.
func (d caseDecoder) list(field string) (*[]string, error) {
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return nil, inField(field, fmt.Errorf("invalid JSON: %w", err))
	}
	names, err := passthrough.DecodeList(raw)
	if err != nil {
		return nil, inField(field, err)
	}
	return names, nil
}

// object reads the opening of an object field; false with a nil error means
// the field is null.
func (d caseDecoder) object(field string) (bool, error) {
	tok, err := d.token(field)
	if err != nil || tok == nil {
		return false, err
	}
	if tok != json.Delim('{') {
		return false, inField(field, fmt.Errorf("got %s, want an object", kind(tok)))
	}
	return true, nil
}

// upstream reads the upstream object; null is no upstream.
func (d caseDecoder) upstream(c *inputCase) error {
	if open, err := d.object(fieldUpstream); !open {
		return err
	}
	for d.dec.More() {
		key, err := d.key()
		if err != nil {
			return err
		}
		field := fieldUpstream + "." + key
		switch key {
		case "name":
			c.upstream.Name, err = d.str(field)
		case "auth_type":
			var s string
			if s, err = d.str(field); err == nil {
				c.upstream.AuthType, err = authType(s)
				err = inField(field, err)
			}
		case "token_exchange":
			c.upstream.TokenExchange, err = d.boolean(field)
		case "passthrough_headers":
			c.own, err = d.list(field)
		default:
			return fmt.Errorf("unknown field %q (want name, auth_type, token_exchange, passthrough_headers)", field)
		}
		if err != nil {
			return err
		}
	}
	return d.close(fieldUpstream)
}

// authType checks an auth_type against passthrough.AuthTypes.
func authType(s string) (passthrough.AuthType, error) {
	types := passthrough.AuthTypes()
	if slices.Contains(types, passthrough.AuthType(s)) {
		return passthrough.AuthType(s), nil
	}
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return "", fmt.Errorf("got %q, want one of %s", s, strings.Join(names, ", "))
}

// settings reads the per-case overrides; null is none.
func (d caseDecoder) settings(o *overrides) error {
	if open, err := d.object(fieldSettings); !open {
		return err
	}
	for d.dec.More() {
		key, err := d.key()
		if err != nil {
			return err
		}
		var bit uint8
		switch key {
		case "enable_header_passthrough":
			bit = switchPassthrough
		case "enable_overwrite_base_headers":
			bit = switchOverwrite
		case "authenticates_clients":
			bit = switchAuthenticates
		default:
			return fmt.Errorf("unknown field %q (want enable_header_passthrough, enable_overwrite_base_headers, authenticates_clients)",
				fieldSettings+"."+key)
		}
		on, err := d.boolean(fieldSettings + "." + key)
		if err != nil {
			return err
		}
		o.set |= bit
		if on {
			o.value |= bit
		} else {
			o.value &^= bit
		}
	}
	return d.close(fieldSettings)
}

// inField prefixes err with the field it is about; nil stays nil.
func inField(field string, err error) error {
	if err == nil || field == "" {
		return err
	}
	return fmt.Errorf("field %s: %w", field, err)
}

// kind describes a token for error messages.
func kind(tok json.Token) string {
	switch tok := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case string:
		return "a string"
	case json.Delim:
		if tok == '[' {
			return "a list"
		}
		return "an object"
	}
	return fmt.Sprintf("%T", tok)
}
