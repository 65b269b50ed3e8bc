#ifndef SP_COMMON_VERSION_H
#define SP_COMMON_VERSION_H

#ifndef SPACEPORT_VERSION
#define SPACEPORT_VERSION "0.1.0-dev"
#endif

#endif
