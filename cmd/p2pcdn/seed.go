package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func seedCommand() *cli.Command {
	return &cli.Command{
		Name:  "seed",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return errors.New("seed: not implemented yet")
		},
	}
}
