package Test::Nginx::Util;

# The nginx side of our small Test::Nginx-compatible runner: settings,
# nginx.conf generation, starting and stopping nginx for each test block,
# reading the block's part of error.log, and the run_tests() loop.
#
# Used only when openresty's Test::Nginx is not installed (the Makefile
# puts t/lib on PERL5LIB then).  It follows upstream's documented
# behaviour for the features our suite uses; see t/lib/README.

use strict;
use warnings;

use Cwd qw(getcwd);
use Exporter 'import';
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use List::Util qw(shuffle);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Test::More ();

our @EXPORT = qw(
    repeat_each workers master_on master_off master_process_enabled
    log_level no_shuffle no_long_string no_root_location env_to_nginx
    add_block_preprocessor server_name server_addr server_port
    server_port_for_client server_root html_dir timeout bail_out
    run_tests worker_connections config_preamble
);

our $ServerName = 'localhost';
our $ServerAddr = '127.0.0.1';
our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                  || 1984;
our $ServerPortForClient = $ServerPort;

# for "--- config" and eval'ed sections alike
$ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
our $NginxBinary = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules = $ENV{TEST_NGINX_LOAD_MODULES} || '';
our $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $NoClean = $ENV{TEST_NGINX_NO_CLEAN};
our $ForceRestart = $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} // 1;
our $NoShuffle = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $Timeout = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $LogLevel = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $RepeatEach = 1;
our $Workers = 1;
our $WorkerConnections = 64;
our $MasterProcessEnabled = 'off';
our $DaemonEnabled = 'on';
our $NoLongString = 0;
our $NoRootLocation = 0;
our $ConfigPreamble = '';
our @EnvToNginx;
our @BlockPreprocessors;

# set by Test::Nginx::Socket: runs the requests and checks of one block
our $RunTestHelper;

# the process that writes the pid file, or our child under valgrind
our ($NginxPid, $ChildPid, $RunningConf, $PrevBlockName);

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
$ServRoot = getcwd() . "/$ServRoot" if $ServRoot !~ m{^/};
$ServRoot =~ s{/+$}{};
our $LogDir = "$ServRoot/logs";
our $HtmlDir = "$ServRoot/html";
our $ConfDir = "$ServRoot/conf";
our $ConfFile = "$ConfDir/nginx.conf";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $PidFile = "$LogDir/nginx.pid";

# where this block's part of error.log starts
our $ErrLogFilePos = 0;

my $ValgrindExtraTimeout = 3;


sub repeat_each { $RepeatEach = shift if @_; return $RepeatEach }
sub workers { $Workers = shift if @_; return $Workers }
sub worker_connections {
    $WorkerConnections = shift if @_;
    return $WorkerConnections;
}
sub master_on { $MasterProcessEnabled = 'on' }
sub master_off { $MasterProcessEnabled = 'off' }
sub master_process_enabled {
    $MasterProcessEnabled = $_[0] ? 'on' : 'off' if @_;
    return $MasterProcessEnabled eq 'on';
}
sub log_level { $LogLevel = shift if @_; return $LogLevel }
sub no_shuffle { $NoShuffle = 1 }
sub no_long_string { $NoLongString = 1 }
sub no_root_location { $NoRootLocation = 1 }
sub config_preamble { $ConfigPreamble = shift if @_; return $ConfigPreamble }
sub env_to_nginx { push @EnvToNginx, @_ }
sub add_block_preprocessor { push @BlockPreprocessors, shift }
sub server_name { $ServerName = shift if @_; return $ServerName }
sub server_addr { $ServerAddr = shift if @_; return $ServerAddr }
sub server_port { $ServerPort = shift if @_; return $ServerPort }
sub server_port_for_client { return $ServerPortForClient }
sub server_root { return $ServRoot }
sub html_dir { return $HtmlDir }

sub timeout {
    $Timeout = shift if @_;
    return $UseValgrind ? $Timeout + $ValgrindExtraTimeout : $Timeout;
}


sub bail_out {
    my $msg = join '', @_;
    stop_nginx();
    Test::More::BAIL_OUT($msg);
}


# "3", "1.5s", "500ms" -> seconds; undef stays undef
sub parse_time {
    my $t = shift;

    return undef if !defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^(\d+(?:\.\d+)?)ms$/;
    return $1 if $t =~ /^(\d+(?:\.\d+)?)s?$/;
    die "bad time value \"$t\"\n";
}


# $TEST_NGINX_FOO -> $ENV{TEST_NGINX_FOO}; an unset one is an error
sub expand_env {
    my ($text, $name) = @_;

    return '' if !defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        defined $ENV{$1} ? $ENV{$1}
                         : die "$name - No environment $1 defined.\n"
    }ge;
    return $text;
}


sub gen_config {
    my ($block) = @_;

    my $name = $block->name;
    my $main = expand_env(scalar $block->main_config, $name);
    my $post_main = expand_env(scalar $block->post_main_config, $name);
    my $http = expand_env(scalar $block->http_config, $name);
    my $config = expand_env(scalar $block->config, $name);
    my $daemon = $UseValgrind ? 'off' : $DaemonEnabled;
    my $modules = join '', map { "load_module $_;\n" } split ' ', $LoadModules;
    my $env = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" } @EnvToNginx;
    my $user = $> == 0 ? "user root;\n" : '';
    my $root = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    return <<"_EOC_";
# generated by t/lib/Test/Nginx for "$name"
${modules}worker_processes  $Workers;
daemon $daemon;
master_process $MasterProcessEnabled;
error_log $ErrLogFile $LogLevel;
pid       $PidFile;
$env$user
$main

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$http

    server {
        listen          $ServerAddr:$ServerPort;
        server_name     '$ServerName';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root    }
}

$post_main

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
_EOC_
}


sub write_file {
    my ($path, $data) = @_;

    open my $out, '>', $path or die "cannot write $path: $!\n";
    binmode $out;
    print $out $data;
    close $out or die "cannot write $path: $!\n";
}


sub setup_server_root {
    my ($conf) = @_;

    # only our own subdirectories, never the whole TEST_NGINX_SERVROOT;
    # then, as upstream does, the server root itself must go: anything
    # else a test left in it (a file a client still writes, say) stops
    # the run here, as it would under upstream's runner
    remove_tree($ConfDir, $LogDir, $HtmlDir, glob("$ServRoot/*_temp"),
                glob("$ServRoot/*_cache"));
    unlink "$ServRoot/nginx.stderr";    # where this runner once put it
    if (-d $ServRoot && !rmdir $ServRoot) {
        my $err = $!;
        opendir(my $dir, $ServRoot);
        my @left = grep { !/^\.\.?$/ } readdir $dir;
        bail_out("Can't remove $ServRoot (not empty?): $err: left there: "
                 . join(' ', sort @left));
    }
    make_path($ConfDir, $LogDir, $HtmlDir);
    write_file("$HtmlDir/index.html",
               '<html><head><title>It works!</title></head>'
               . '<body>It works!</body></html>');
    write_file($ConfFile, $conf);
}


sub read_pid_file {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in>;
    close $in;
    return undef if !defined $pid || $pid !~ /^\s*(\d+)\s*$/;
    return $1;
}


# alive and not a zombie (a daemon's zombie may wait long for its reaper)
sub is_running {
    my ($pid) = @_;

    return 0 if !$pid || !kill(0, $pid);
    if (open my $in, '<', "/proc/$pid/stat") {
        my $stat = <$in> // '';
        close $in;
        return 0 if $stat =~ /^\d+ \(.*\) Z /s;
    }
    return 1;
}


# an nginx left behind by an earlier run with this very server root
sub stale_nginx {
    my $pid = read_pid_file();

    return undef if !is_running($pid);
    open my $in, '<', "/proc/$pid/cmdline" or return undef;
    my $cmd = do { local $/; <$in> } // '';
    close $in;
    return index($cmd, $ConfFile) >= 0 ? $pid : undef;
}


sub wait_gone {
    my ($pid, $secs) = @_;
    my $deadline = time + $secs;

    while (time < $deadline) {
        if (defined $ChildPid && $pid == $ChildPid) {
            if (waitpid($pid, WNOHANG) == $pid) {
                undef $ChildPid;
                return 1;
            }

        } elsif (!is_running($pid)) {
            return 1;
        }

        sleep 0.02;
    }

    return 0;
}


# graceful stop (SIGQUIT), then SIGTERM, then SIGKILL
sub stop_nginx {
    my $pid = $ChildPid // $NginxPid // stale_nginx();

    undef $RunningConf;
    undef $NginxPid;
    return if !$pid;

    for my $sig (['QUIT', $UseValgrind ? 30 : 5], ['TERM', 3], ['KILL', 3]) {
        kill $sig->[0], $pid;
        return if wait_gone($pid, $sig->[1]);
        warn "WARNING: nginx $pid did not exit on SIG$sig->[0]\n";
    }
}


sub port_open {
    my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                     PeerPort => $ServerPort,
                                     Proto => 'tcp', Timeout => 1);
    return 0 if !$sock;
    close $sock;
    return 1;
}


sub nginx_command {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);

    return @cmd if !$UseValgrind;

    my @vg = ('valgrind', '--tool=memcheck', '--leak-check=full',
              '--show-possibly-lost=no', '--num-callers=50', '-q',
              "--log-file=$LogDir/valgrind.%p.log");
    my $supp = getcwd() . '/valgrind.suppress';
    push @vg, "--suppressions=$supp" if -f $supp;
    (my $ours = __FILE__) =~ s{[^/]+$}{valgrind-nginx.supp};
    push @vg, "--suppressions=$ours" if -f $ours;
    push @vg, $UseValgrind if $UseValgrind !~ /^\d+$/;
    return (@vg, @cmd);
}


sub slurp {
    my ($path) = @_;
    open my $in, '<', $path or return '';
    local $/;
    my $data = <$in>;
    close $in;
    return $data // '';
}


# runs nginx (or valgrind) with its stderr in a file of the logs
sub spawn {
    my ($cmd, $errfile) = @_;

    my $pid = fork();
    die "fork: $!\n" if !defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $errfile;
        exec @$cmd or POSIX::_exit(127);
    }
    return $pid;
}


# Starts nginx for the block; returns an error message or undef.
sub start_nginx {
    my ($conf) = @_;
    my @cmd = nginx_command();
    # in logs/, which upstream's runner removes between files (it stops
    # at anything else it finds in TEST_NGINX_SERVROOT)
    my $errfile = "$LogDir/nginx.stderr";
    my ($deadline, $pid);

    setup_server_root($conf);

    if ($UseValgrind) {
        # valgrind cannot follow nginx's daemon fork: run it as our child
        $ChildPid = $pid = spawn(\@cmd, $errfile);
        $deadline = time + 60;

        while (!port_open()) {
            if (waitpid($pid, WNOHANG) == $pid) {
                undef $ChildPid;
                return "nginx under valgrind exited with status $?: "
                       . slurp($errfile);
            }
            return "nginx under valgrind did not listen within 60s"
                if time > $deadline;
            sleep 0.1;
        }

        $NginxPid = $pid;
        return undef;
    }

    # the previous nginx may still hold the port for a moment
    $deadline = time + 10;

    while (1) {
        waitpid(spawn(\@cmd, $errfile), 0);
        last if $? == 0;
        my $err = slurp($errfile);
        return "cannot start nginx (\"@cmd\", status $?): $err"
            if time > $deadline || $err !~ /Address already in use/;
        sleep 0.1;
    }

    # the daemon writes its pid file a moment after its parent exits; it
    # listens by then (the sockets are opened before the fork)
    $deadline = time + 10;
    while (!defined($NginxPid = read_pid_file())) {
        return "nginx wrote no pid file" if time > $deadline;
        sleep 0.01;
    }

    return undef;
}


# lines of error.log written since the block (or the last check) began
sub error_log_data {
    # lines from the log phase come right after the response is sent
    sleep 0.05;

    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 if $ErrLogFilePos > 0;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in;
    close $in;
    return \@lines;
}


# valgrind findings of the nginx just stopped, as test failures
sub check_valgrind_logs {
    my ($name) = @_;

    for my $log (glob "$LogDir/valgrind.*.log") {
        my $text = slurp($log);

        if ($text =~ /definitely\ lost\ in|Invalid\ (?:read|write|free)
                      |uninitialised|Mismatched\ free|overlap/x)
        {
            Test::More::fail("$name - valgrind found memory errors");
            Test::More::diag($text);
        }

        unlink $log;
    }
}


sub run_tests {
    my @blocks = Test::Base::blocks();

    @blocks = shuffle @blocks if !$NoShuffle;

    if (my $stale = stale_nginx()) {
        $NginxPid = $stale;
        stop_nginx();
    }

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        run_test($block);
        $PrevBlockName = $block->name;
    }

    if (!$NoClean || $UseValgrind) {
        stop_nginx();
        check_valgrind_logs($PrevBlockName) if $UseValgrind;
    }
}


sub should_skip {
    my ($block) = @_;
    my $spec = $block->skip_eval;

    return () if !defined $spec;
    $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
        or die $block->name . " - bad --- skip_eval: $spec\n";
    my ($n, $code) = ($1, $2);
    my $skip = eval $code;
    die $block->name . " - skip_eval failed: $@" if $@;
    return $skip ? ($n, 'skip_eval') : ();
}


sub run_test {
    my ($block) = @_;
    my $name = $block->name;
    my ($conf, $err, @skip);

    local $LogLevel = $block->log_level if $block->log_level;

    @skip = should_skip($block);
    if (@skip) {
        SKIP: { Test::More::skip("$name - $skip[1]", $skip[0]) }
        return;
    }

    $conf = eval { gen_config($block) };
    if (!defined $conf) {
        Test::More::fail($@);
        return;
    }

    if ($ForceRestart || !defined $RunningConf || $conf ne $RunningConf) {
        stop_nginx();
        check_valgrind_logs($PrevBlockName) if $UseValgrind;

        $err = start_nginx($conf);
        if (defined $err) {
            Test::More::fail("$name - nginx started");
            Test::More::diag($err);
            return;
        }

        $RunningConf = $conf;
        $ErrLogFilePos = 0;

    } else {
        # the same nginx goes on: this block's log starts here
        $ErrLogFilePos = -s $ErrLogFile || 0;
    }

    if (defined $block->init) {
        eval $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    for my $i (0 .. $RepeatEach - 1) {
        $RunTestHelper->($block, 0, $i);
    }
}


END {
    # a forked child (e.g. a test's helper process) must not stop nginx
    if (defined $NginxPid && !$NoClean && $$ == ($Test::Nginx::Util::Owner)) {
        stop_nginx();
    }
}

our $Owner = $$;

1;
