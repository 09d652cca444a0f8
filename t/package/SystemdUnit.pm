package SystemdUnit;

# A service unit run the way systemd runs it, for machines where systemd
# is not PID 1 (containers, chroots): the [Service] section of a
# template unit read for one instance, its Environment= and
# EnvironmentFile= read, the ExecStart= line split and expanded by
# systemd's rules, and the command started as the unit's User=, Group=
# and SupplementaryGroups=, with its UMask= and NoNewPrivileges=, in the
# environment systemd gives a service.
#
#   my $svc = unit_service($path, $instance);
#   # { argv => [...], env => {...}, user, group, groups => [...], ... }
#   my $pid = unit_spawn($svc, $log);       # stdout and stderr to $log
#
# Only what the unit uses is understood: a specifier, an ExecStart=
# prefix or a $ form it does not know makes unit_service die, so that a
# change to the unit cannot pass unnoticed here.  The other [Service]
# keys (restart, stop, sandbox) are systemd's alone: not_run lists them.

use strict;
use warnings;

use Config;
use Exporter qw(import);
use POSIX ();

our @EXPORT = qw(unit_service unit_spawn);

# the [Service] keys that change how the command runs, and are run here
my %Run = map { $_ => 1 } qw(User Group SupplementaryGroups Environment
                             EnvironmentFile ExecStart UMask
                             NoNewPrivileges);


# systemd's word splitting: white space separates, "..." and '...' quote,
# a backslash escapes (C escapes inside double quotes)
sub split_words {
    my ($line) = @_;
    my (@words, $word);

    while ($line =~ /\G\s*/gc && pos($line) < length $line) {
        $word = '';
        while (pos($line) < length $line && $line !~ /\G\s/gc) {
            if ($line =~ /\G"((?:[^"\\]|\\.)*)"/gc) {
                $word .= unescape($1);
            } elsif ($line =~ /\G'([^']*)'/gc) {
                $word .= $1;
            } elsif ($line =~ /\G\\(.)/gc) {
                $word .= $1;
            } elsif ($line =~ /\G([^\s"'\\]+)/gc) {
                $word .= $1;
            } else {
                die "SystemdUnit: cannot split: $line\n";
            }
        }
        push @words, $word;
    }

    return @words;
}


sub unescape {
    my ($s) = @_;
    my %c = (n => "\n", t => "\t", r => "\r");

    $s =~ s{\\(.)}{$c{$1} // $1}ge;
    return $s;
}


sub specifiers {
    my ($s, $instance) = @_;

    $s =~ s{%(.)}{
        $1 eq 'i' ? $instance
        : $1 eq '%' ? '%'
        : die "SystemdUnit: specifier %$1 is not known here\n"
    }ge;
    return $s;
}


# EnvironmentFile=: VAR=value lines, # and ; comments, quoted values
sub read_env_file {
    my ($path, $env) = @_;

    open my $fh, '<', $path or die "SystemdUnit: $path: $!\n";
    while (my $line = <$fh>) {
        chomp $line;
        next if $line =~ /^\s*(?:[#;].*)?$/;
        $line =~ /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/
            or die "SystemdUnit: $path: not VAR=value: $line\n";
        my ($name, $value) = ($1, $2);
        if ($value =~ /^\s*"((?:[^"\\]|\\.)*)"\s*$/) {
            $value = unescape($1);
        } elsif ($value =~ /^\s*'([^']*)'\s*$/) {
            $value = $1;
        } else {
            $value =~ s/^\s+|\s+$//g;
        }
        $env->{$name} = $value;
    }
    close $fh;
}


# ExecStart=: a word that is only $VAR becomes the value's words (none
# when it is empty); ${VAR} anywhere in a word is the value, as it is
sub expand_command {
    my ($line, $env) = @_;
    my @argv;

    die "SystemdUnit: ExecStart prefixes are not known here: $line\n"
        if $line =~ /^\s*[-@+!:]/;

    for my $word (split_words($line)) {
        if ($word =~ /^\$([A-Za-z_][A-Za-z0-9_]*)$/) {
            push @argv, grep { length } split /\s+/, $env->{$1} // '';
            next;
        }
        $word =~ s{\$\{([A-Za-z_][A-Za-z0-9_]*)\}}{$env->{$1} // ''}ge;
        die "SystemdUnit: a \$ that is not \${VAR} in: $word\n"
            if $word =~ /\$(?!\$)/;
        $word =~ s/\$\$/\$/g;
        push @argv, $word;
    }

    return @argv;
}


sub unit_service {
    my ($path, $instance) = @_;
    my ($section, %keys) = ('');

    open my $fh, '<', $path or die "SystemdUnit: $path: $!\n";
    while (my $line = <$fh>) {
        chomp $line;
        next if $line =~ /^\s*(?:[#;].*)?$/;
        if ($line =~ /^\[(\w+)\]$/) {
            $section = $1;
            next;
        }
        next if $section ne 'Service';
        $line =~ /^(\w+)=(.*)$/ or die "SystemdUnit: $path: $line\n";
        push @{$keys{$1}}, specifiers($2, $instance);
    }
    close $fh;

    my %env;
    for my $assignments (@{$keys{Environment} || []}) {
        for my $assignment (split_words($assignments)) {
            $assignment =~ /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s
                or die "SystemdUnit: Environment: $assignment\n";
            $env{$1} = $2;
        }
    }
    for my $file (@{$keys{EnvironmentFile} || []}) {
        my $optional = $file =~ s/^-//;
        next if $optional && !-e $file;
        read_env_file($file, \%env);
    }

    my @exec = @{$keys{ExecStart} || []};
    die "SystemdUnit: one ExecStart= is understood here\n" if @exec != 1;

    return {
        argv => [expand_command($exec[0], \%env)],
        env => \%env,
        user => ($keys{User} || [])->[-1],
        group => ($keys{Group} || [])->[-1],
        groups => [map { split ' ' } @{$keys{SupplementaryGroups} || []}],
        umask => ($keys{UMask} || [])->[-1],
        no_new_privs => (($keys{NoNewPrivileges} || [])->[-1] // '')
                        =~ /^(?:yes|true|on|1)$/,
        not_run => [sort grep { !$Run{$_} } keys %keys],
    };
}


# starts the service's command as systemd would; returns its pid
sub unit_spawn {
    my ($svc, $log) = @_;
    my @pw = getpwnam($svc->{user} // 'root')
        or die "SystemdUnit: no user $svc->{user}\n";
    my $gid = defined $svc->{group} ? scalar getgrnam($svc->{group}) : $pw[3];
    die "SystemdUnit: no group $svc->{group}\n" if !defined $gid;
    my @groups = map {
        scalar getgrnam($_) // die "SystemdUnit: no group $_\n"
    } @{$svc->{groups}};

    my $pid = fork;
    die "SystemdUnit: fork: $!\n" if !defined $pid;
    return $pid if $pid;

    eval {
        open STDIN, '<', '/dev/null' or die "stdin: $!\n";
        open STDOUT, '>>', $log or die "$log: $!\n";
        open STDERR, '>&', \*STDOUT or die "stderr: $!\n";

        POSIX::setgid($gid) or die "setgid: $!\n";
        $) = join ' ', $gid, $gid, @groups;     # setgroups()
        POSIX::setuid($pw[2]) or die "setuid: $!\n";
        die "still privileged\n" if $< != $pw[2] || $> != $pw[2];

        if ($Config{archname} =~ /^x86_64-linux/) {
            syscall(157, 38, 1, 0, 0, 0) == 0     # PR_SET_NO_NEW_PRIVS
                or die "no_new_privs: $!\n" if $svc->{no_new_privs};
            # with this test, even if it is SIGKILLed: PR_SET_PDEATHSIG,
            # after setuid(), which clears it
            syscall(157, 1, 15);
        }
        umask oct $svc->{umask} if defined $svc->{umask};

        # what systemd gives a service: its own PATH, the user's names,
        # then Environment= and EnvironmentFile=
        %ENV = (PATH => '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin',
                USER => $pw[0], LOGNAME => $pw[0], HOME => $pw[7],
                SHELL => $pw[8], %{$svc->{env}});

        exec { $svc->{argv}[0] } @{$svc->{argv}};
        die "exec $svc->{argv}[0]: $!\n";
    };
    print STDERR "SystemdUnit: $@";
    POSIX::_exit(127);
}

1;
