/* Commits through the Hub's commit API (work in progress). */
#ifndef SP_RUNTIMED_GITCOMMIT_H
#define SP_RUNTIMED_GITCOMMIT_H

#endif
