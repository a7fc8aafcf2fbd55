package policyplugin_test

import (
	"context"
	"fmt"

	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

type staticSource []policyplugin.Rule

func (s staticSource) EnabledRules(context.Context) ([]policyplugin.Rule, error) { return s, nil }

func Example() {
	eng := policyplugin.NewEngine(staticSource{{
		ID: 1, Priority: 10, Effect: policyplugin.EffectAllow,
		AccountTypes: []string{"system"}, Actions: []policyplugin.Action{policyplugin.ActionPull},
		Repositories: []string{"production/*"}, Enabled: true,
	}})
	if err := eng.Reload(context.Background()); err != nil {
		panic(err)
	}
	for _, repo := range []string{"production/app", "production/team/app"} {
		act, name, _ := policyplugin.ActionFor("repository", repo, "pull")
		eff, _ := eng.Evaluate(policyplugin.Input{Subject: "ci", AccountType: "system", Action: act, Repository: name})
		fmt.Println(repo, eff)
	}
	// Output:
	// production/app allow
	// production/team/app deny
}
