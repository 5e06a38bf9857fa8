// Command kubelet-keyring answers, with the kubelet's own code (k8s.io/kubernetes, built from
// the control plane's wrapper module scripts/controlplane/kubernetes), which pull credentials
// the kubelet tries for an image: pkg/util/parsers.ParseImageName names the repository,
// pkg/credentialprovider/secrets.MakeDockerKeyring reads the pull Secrets and the keyring's
// Lookup orders the candidates. test/integration/kubelet-keyring-differential.test.ts holds
// src/credentials/kubelet-keyring.ts to its answers.
//
// One case per stdin line (JSON), one answer per stdout line, in order:
//
//	in:  {"secrets":[{"name","type","data":{key: base64}}], "images":[...], "servers":[...]}
//	out: {"keyringError":bool, "keys":{server: key|null}, "images":[{"image","parseError",
//	      "repository","tag","digest","candidates":[{"secret","username"}]}]}
//
// "keys" is the key BasicDockerKeyring.Add files each server under (null: it ignores it), read
// from the keyring's unexported index by reflection.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/secrets"
	"k8s.io/kubernetes/pkg/util/parsers"
)

type secretIn struct {
	Name string            `json:"name"`
	Type string            `json:"type"`
	Data map[string][]byte `json:"data"`
}

type caseIn struct {
	Secrets []secretIn `json:"secrets"`
	Images  []string   `json:"images"`
	Servers []string   `json:"servers"`
}

type candidateOut struct {
	Secret   string `json:"secret"`
	Username string `json:"username"`
}

type imageOut struct {
	Image      string         `json:"image"`
	ParseError bool           `json:"parseError"`
	Repository string         `json:"repository"`
	Tag        string         `json:"tag"`
	Digest     string         `json:"digest"`
	Candidates []candidateOut `json:"candidates"`
}

type caseOut struct {
	KeyringError bool               `json:"keyringError"`
	Keys         map[string]*string `json:"keys"`
	Images       []imageOut         `json:"images"`
}

func main() {
	// The keyring logs every entry it ignores; the answers say so already.
	klog.InitFlags(nil)
	_ = flag.Set("logtostderr", "false")
	_ = flag.Set("alsologtostderr", "false")
	_ = flag.Set("stderrthreshold", "FATAL")
	klog.SetOutput(discard{})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var c caseIn
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintf(os.Stderr, "bad case: %v\n", err)
			os.Exit(2)
		}
		answer, err := json.Marshal(resolve(c))
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot encode an answer: %v\n", err)
			os.Exit(2)
		}
		out.Write(answer)
		out.WriteByte('\n')
		// The caller waits for each answer before it asks again.
		out.Flush()
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "reading stdin: %v\n", err)
		os.Exit(2)
	}
}

func resolve(c caseIn) caseOut {
	answer := caseOut{Keys: map[string]*string{}, Images: []imageOut{}}
	for _, server := range c.Servers {
		answer.Keys[server] = keyOf(server)
	}
	pullSecrets := make([]v1.Secret, 0, len(c.Secrets))
	for _, s := range c.Secrets {
		pullSecrets = append(pullSecrets, v1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: "tenant", UID: types.UID("uid-" + s.Name)},
			Type:       v1.SecretType(s.Type),
			Data:       s.Data,
		})
	}
	keyring, err := secrets.MakeDockerKeyring(pullSecrets, nil)
	if err != nil {
		answer.KeyringError = true
	}
	for _, image := range c.Images {
		result := imageOut{Image: image, Candidates: []candidateOut{}}
		repo, tag, digest, err := parsers.ParseImageName(image)
		if err != nil {
			result.ParseError = true
			answer.Images = append(answer.Images, result)
			continue
		}
		result.Repository, result.Tag, result.Digest = repo, tag, digest
		if keyring != nil && !answer.KeyringError {
			creds, _ := keyring.Lookup(repo)
			for _, cred := range creds {
				name := ""
				if cred.Source != nil && cred.Source.Secret != nil {
					name = cred.Source.Secret.Name
				}
				result.Candidates = append(result.Candidates, candidateOut{Secret: name, Username: cred.Username})
			}
		}
		answer.Images = append(answer.Images, result)
	}
	return answer
}

// keyOf is the key BasicDockerKeyring.Add files server under, nil when it ignores it.
func keyOf(server string) *string {
	keyring := &credentialprovider.BasicDockerKeyring{}
	keyring.Add(nil, credentialprovider.DockerConfig{server: credentialprovider.DockerConfigEntry{}})
	index := reflect.ValueOf(keyring).Elem().FieldByName("index")
	if index.Len() != 1 {
		return nil
	}
	key := index.Index(0).String()
	return &key
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
