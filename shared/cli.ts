import { Command } from 'commander';
import { clientCommand } from '../client/cli';
import { coordinatorCommand, reportAndExit } from '../coordinator/cli';

/** `tributary <role>`: one command, a subcommand per role. */
const program = new Command('tributary')
  .description('Tributary: a federated-learning coordinator and the data-provider client.')
  .addCommand(coordinatorCommand())
  .addCommand(clientCommand());

program.parseAsync(process.argv).catch(reportAndExit);
