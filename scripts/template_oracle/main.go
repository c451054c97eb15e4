// Command template_oracle renders the template corpus with Go's own text/template and writes
// the results as golden files, so the Python engine can be checked against real Go byte for byte.
//
// Each cases/<topic>.json holds a list of cases; the results go to cases/<topic>.golden.json as
// {"case id": {"output": "..."}} or {"case id": {"error": "..."}}. Templates run as under
// consul-template: missingkey=zero unless a case asks for missingkey=error, JSON data decoded
// with UseNumber (Vault's client does the same) unless a case asks for float64 numbers.
//
// Only the standard library is used. Besides Go's builtins the templates may call secret (from
// the case's "secrets"), toJSON, toJSONPretty and toUnescapedJSON, written after consul-template's
// documented behaviour.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"template_oracle/dependency"
)

type rawSecret struct {
	RequestID     string          `json:"request_id"`
	LeaseID       string          `json:"lease_id"`
	LeaseDuration int             `json:"lease_duration"`
	Renewable     bool            `json:"renewable"`
	Data          json.RawMessage `json:"data"`
	Warnings      []string        `json:"warnings"`
}

type testCase struct {
	ID         string               `json:"id"`
	Name       string               `json:"name"`
	Template   json.RawMessage      `json:"template"`
	Data       json.RawMessage      `json:"data"`
	DataJSON   string               `json:"data_json"`
	Numbers    string               `json:"numbers"`
	Secrets    map[string]rawSecret `json:"secrets"`
	Left       string               `json:"left"`
	Right      string               `json:"right"`
	MissingKey string               `json:"missingkey"`
	Redacted   []string             `json:"redacted"`
	Note       string               `json:"note"`
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

func decode(raw json.RawMessage, useNumber bool) (interface{}, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	decoder := json.NewDecoder(bytes.NewReader(raw))
	if useNumber {
		decoder.UseNumber()
	}
	var value interface{}
	if err := decoder.Decode(&value); err != nil {
		return nil, err
	}
	return value, nil
}

func templateText(raw json.RawMessage) (string, error) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return text, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return "", fmt.Errorf("template must be a string or a list of lines: %w", err)
	}
	return strings.Join(lines, "\n"), nil
}

func functions(c testCase) (template.FuncMap, error) {
	secrets := map[string]*dependency.Secret{}
	for path, raw := range c.Secrets {
		data, err := decode(raw.Data, true)
		if err != nil {
			return nil, err
		}
		dataMap, _ := data.(map[string]interface{})
		secrets[path] = &dependency.Secret{
			RequestID:     raw.RequestID,
			LeaseID:       raw.LeaseID,
			LeaseDuration: raw.LeaseDuration,
			Renewable:     raw.Renewable,
			Data:          dataMap,
			Warnings:      raw.Warnings,
		}
	}
	return template.FuncMap{
		"secret": func(s ...string) (interface{}, error) {
			if len(s) == 0 {
				return nil, nil
			}
			path := strings.Trim(strings.TrimSpace(s[0]), "/")
			secret, ok := secrets[path]
			if !ok {
				return nil, fmt.Errorf("oracle: no secret at %q", path)
			}
			return secret, nil
		},
		"toJSON": func(i interface{}) (string, error) {
			out, err := json.Marshal(i)
			if err != nil {
				return "", fmt.Errorf("toJSON: %w", err)
			}
			return string(bytes.TrimSpace(out)), nil
		},
		"toJSONPretty": func(i interface{}) (string, error) {
			out, err := json.MarshalIndent(i, "", "  ")
			if err != nil {
				return "", fmt.Errorf("toJSONPretty: %w", err)
			}
			return string(bytes.TrimSpace(out)), nil
		},
		"toUnescapedJSON": func(i interface{}) (string, error) {
			var buf bytes.Buffer
			encoder := json.NewEncoder(&buf)
			encoder.SetEscapeHTML(false)
			if err := encoder.Encode(i); err != nil {
				return "", fmt.Errorf("toUnescapedJSON: %w", err)
			}
			return strings.TrimRight(buf.String(), "\r\n"), nil
		},
	}, nil
}

func run(c testCase) (result, error) {
	text, err := templateText(c.Template)
	if err != nil {
		return result{}, err
	}
	rawData := c.Data
	if c.DataJSON != "" {
		// Data given as JSON text keeps number literals exactly as written (1.50, 1e3).
		rawData = json.RawMessage(c.DataJSON)
	}
	data, err := decode(rawData, c.Numbers != "float64")
	if err != nil {
		return result{}, fmt.Errorf("data: %w", err)
	}
	funcs, err := functions(c)
	if err != nil {
		return result{}, fmt.Errorf("secrets: %w", err)
	}
	name := c.Name
	if name == "" {
		name = "case"
	}
	missingKey := "zero"
	if c.MissingKey != "" {
		missingKey = c.MissingKey
	}
	tmpl := template.New(name).Delims(c.Left, c.Right).Funcs(funcs).Option("missingkey=" + missingKey)
	if _, err := tmpl.Parse(text); err != nil {
		message := err.Error()
		return result{Error: &message}, nil
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		message := err.Error()
		return result{Error: &message}, nil
	}
	output := out.String()
	return result{Output: &output}, nil
}

func processFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cases []testCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	results := map[string]result{}
	for _, c := range cases {
		if _, dup := results[c.ID]; dup {
			return fmt.Errorf("%s: duplicate case id %q", path, c.ID)
		}
		r, err := run(c)
		if err != nil {
			return fmt.Errorf("%s: case %q: %w", path, c.ID, err)
		}
		results[c.ID] = r
	}
	var buf bytes.Buffer
	encoder := json.NewEncoder(&buf)
	encoder.SetEscapeHTML(false)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(results); err != nil {
		return err
	}
	golden := strings.TrimSuffix(path, ".json") + ".golden.json"
	return os.WriteFile(golden, buf.Bytes(), 0o644)
}

func main() {
	casesDir := flag.String("cases", "", "directory of <topic>.json case files")
	flag.Parse()
	if *casesDir == "" {
		fmt.Fprintln(os.Stderr, "usage: template_oracle -cases DIR")
		os.Exit(2)
	}
	paths, err := filepath.Glob(filepath.Join(*casesDir, "*.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sort.Strings(paths)
	for _, path := range paths {
		if strings.HasSuffix(path, ".golden.json") {
			continue
		}
		if err := processFile(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("wrote", strings.TrimSuffix(path, ".json")+".golden.json")
	}
}
