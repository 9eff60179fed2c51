/*
 * java_agent_jar.c - the agent jar (built from agent/ with the JDK's javac
 * and jar, see CMakeLists.txt), embedded in the plugin's .so: the plugin
 * writes it into the JVM's /tmp when it attaches. JAVA_AGENT_JAR_PATH is
 * set by CMakeLists.txt.
 */
#ifndef JAVA_AGENT_JAR_PATH
#error "JAVA_AGENT_JAR_PATH must name the agent jar to embed"
#endif

__asm__("	.section .rodata.java_agent_jar,\"a\",@progbits\n"
	"	.balign 8\n"
	"	.globl java_agent_jar_start\n"
	"	.hidden java_agent_jar_start\n"
	"java_agent_jar_start:\n"
	"	.incbin \"" JAVA_AGENT_JAR_PATH "\"\n"
	"	.globl java_agent_jar_end\n"
	"	.hidden java_agent_jar_end\n"
	"java_agent_jar_end:\n"
	"	.previous\n");
