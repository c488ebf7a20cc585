import { Command } from 'commander';
import { buyerCommand } from '../client/buyer/cli';
import { clientCommand } from '../client/cli';
import { heKeyholderCommand } from '../client/heKeyholderCli';
import { keyholderCommand } from '../client/keyholderCli';
import { coordinatorCommand, reportAndExit } from '../coordinator/cli';
import { auditCommand } from './audit';

/** `tributary <role>`: one command, a subcommand per role. */
const program = new Command('tributary')
  .description(
    'Tributary: a federated-learning coordinator, the data-provider client, the buyer (with its audit) and the Paillier key holder.',
  )
  // Options belong to the command they follow, so `client publish-listing --coordinator ...` reaches publish-listing.
  .enablePositionalOptions()
  .addCommand(coordinatorCommand())
  .addCommand(clientCommand())
  .addCommand(keyholderCommand())
  .addCommand(heKeyholderCommand())
  .addCommand(buyerCommand())
  .addCommand(auditCommand());

program.parseAsync(process.argv).catch(reportAndExit);
