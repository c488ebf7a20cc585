import { Command } from 'commander';
import { clientCommand } from '../client/cli';
import { heKeyholderCommand } from '../client/heKeyholderCli';
import { keyholderCommand } from '../client/keyholderCli';
import { coordinatorCommand, reportAndExit } from '../coordinator/cli';

/** `tributary <role>`: one command, a subcommand per role. */
const program = new Command('tributary')
  .description('Tributary: a federated-learning coordinator, the data-provider client and the Paillier key holder.')
  // Options belong to the command they follow, so `client publish-listing --coordinator ...` reaches publish-listing.
  .enablePositionalOptions()
  .addCommand(coordinatorCommand())
  .addCommand(clientCommand())
  .addCommand(keyholderCommand())
  .addCommand(heKeyholderCommand());

program.parseAsync(process.argv).catch(reportAndExit);
