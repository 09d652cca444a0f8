package KafkaStream::Test;

# Test helpers for ngx_http_kafka_stream_module: Apache Kafka for the test
# file, binary-safe produce and consume, test media made with the ffmpeg
# CLI, and a multipart/x-mixed-replace splitter.
#
#   use KafkaStream::Test;                      # topic dbtech:1
#   use KafkaStream::Test topics => ['dbtech:1', 'cams:3'];
#   use KafkaStream::Test topics => ['cams:3:3'], brokers => 3;
#   use KafkaStream::Test own_broker => 1;      # a broker of its own
#   use KafkaStream::Test brokers => 0;         # helpers only, no broker
#
# Kafka: `make test` starts one broker for the whole run (t/with-kafka)
# and names it in $KAFKA_STREAM_TEST_BROKERS; a file then deletes its
# topics there if an earlier run left them, and creates them anew, so each
# test file starts on empty topics of its own.  A file that asks for
# several brokers or for its own broker (fault tests, which kill it), and
# every file run without that variable (plain prove), starts its own
# cluster with build/kafka-stream-broker, which stops at END, on SIGINT,
# SIGTERM and SIGHUP, and (Linux x86_64) when this process is killed.
# Either way $ENV{TEST_NGINX_KAFKA_BROKERS} holds the bootstrap address,
# so nginx.conf sections can say $TEST_NGINX_KAFKA_BROKERS.
#
# The functions are exported to the caller and to Test::Nginx::Util, where
# Test::Nginx evaluates "--- init" code:
#
#   kafka_brokers()                      the bootstrap address
#   broker_control("kill 1")             a command to the test's own
#                                        cluster (kill, stop, start, pause,
#                                        resume NODE|all; pid NODE: see
#                                        broker/kafka-stream-broker); dies
#                                        unless it answers "ok" or "pid N"
#   restart_broker()                     kills every broker (SIGKILL) and
#                                        starts them again on their data
#   topic_admin('create', 'x:2')         kafka-stream-topics on the cluster
#                                        (create, delete, describe); the
#                                        output lines, dies on failure
#   produce($topic, $bytes, key => $k, partition => $p,
#           headers => [name => value, ...], config => ['prop=val'],
#           timestamp => $ms)            synchronous: returns once stored;
#                                        timestamp: the message's CreateTime
#                                        (default: the time of sending)
#   produce_files($topic, \@paths, %same_opts)   one message per file
#   produce_batch($topic, [[$bytes, key => $k, timestamp => $ms], ...],
#                 partition => $p, config => [...])
#                                        several messages by one producer,
#                                        in order; returns once all stored
#   produce_later($delay, $interval, $topic, \@payloads, %opts)   a child;
#                                        returns its pid
#   wait_for_children()                  reaps them; true if all succeeded
#   make_frames($n, format => 'png'|'jpeg', size => '64x48')
#                                        n distinct images, as byte strings
#   make_video($path, duration => 2, fps => 10, size => '320x240',
#              codec => ..., pix_fmt => ..., args => [...])
#   consume($topic, count => $n, timeout => 10, from => 'beginning',
#           partition => $p)             list of { key, value, headers,
#                                        timestamp, partition, offset };
#                                        without count: what is there now
#   multipart_parts($body, $boundary)    list of { headers => {lc name =>
#                                        value}, body }; a cut last part
#                                        is dropped
#
# Keys, values and header values may hold any bytes; header names cannot
# hold NUL (librdkafka keeps them as C strings).

use strict;
use warnings;

use Config;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Select;
use IPC::Open3 qw(open3);
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use IO::Handle;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    kafka_brokers broker_control restart_broker topic_admin
    produce produce_files produce_batch produce_later wait_for_children
    make_frames make_video consume multipart_parts
);

my $Repo = abs_path(dirname(__FILE__) . '/../../..');

# JSON::PP takes 25 ms a PNG frame of 14 kB, seconds a topic: the XS
# decoder where it is installed (libcpanel-json-xs-perl), with the same
# answers
my $JSON = eval { require Cpanel::JSON::XS; 'Cpanel::JSON::XS' } // 'JSON::PP';
my $Owner = $$;
my %Opts;
my ($BrokerPid, $BrokerIn, $BrokerOut, $BrokerAddr, $BrokerDir);
our @Children;    # KafkaStream::Viewers adds its own


sub import {
    my ($class, %opts) = @_;
    my $caller = caller;

    # a second "use" (e.g. from a helper module) keeps the first cluster
    if (!defined $BrokerAddr) {
        %Opts = (topics => ['dbtech:1'], brokers => 1, own_broker => 0,
                 %opts);
    }

    no strict 'refs';
    for my $pkg ($caller, 'Test::Nginx::Util') {
        for my $name (@EXPORT) {
            *{"${pkg}::$name"} = \&$name if !defined &{"${pkg}::$name"};
        }
    }

    return if $Opts{brokers} == 0 || defined $BrokerAddr;

    my $shared = $ENV{KAFKA_STREAM_TEST_BROKERS};

    if (defined $shared && $shared ne '' && $Opts{brokers} == 1
        && !$Opts{own_broker})
    {
        $BrokerAddr = $shared;
        $ENV{TEST_NGINX_KAFKA_BROKERS} = $BrokerAddr;
        fresh_topics();

    } else {
        start_broker();
    }
}


sub tool {
    my ($name) = @_;

    for my $dir ($ENV{TEST_NGINX_KAFKA_BIN}, "$Repo/build") {
        return "$dir/$name" if defined $dir && -x "$dir/$name";
    }

    die "KafkaStream::Test: $name not found in \$TEST_NGINX_KAFKA_BIN or "
        . "$Repo/build: run make\n";
}


# reads one line from a pipe, giving up at the deadline
sub read_line {
    my ($fh, $deadline, $what) = @_;
    my $sel = IO::Select->new($fh);
    my $line = '';

    while ($line !~ /\n/) {
        my $left = $deadline - time;
        die "KafkaStream::Test: no answer from the broker ($what)\n"
            if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread $fh, my $buf, 1;
        die "KafkaStream::Test: the broker exited ($what)\n" if !$n;
        $line .= $buf;
    }

    chomp $line;
    return $line;
}


sub start_broker {
    $BrokerDir = tempdir('kafka-stream-test-XXXXXX', TMPDIR => 1,
                         CLEANUP => 1);

    my @cmd = (tool('kafka-stream-broker'), '--control', '-d', $BrokerDir,
               '-n', $Opts{brokers}, map { ('-t', $_) } @{$Opts{topics}});

    pipe(my $to_r, my $to_w) or die "pipe: $!\n";
    pipe(my $from_r, my $from_w) or die "pipe: $!\n";

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        open STDIN, '<&', $to_r or POSIX::_exit(127);
        open STDOUT, '>&', $from_w or POSIX::_exit(127);
        close $to_w;
        close $from_r;

        # the cluster goes with this test process even if that is
        # SIGKILLed: prctl(PR_SET_PDEATHSIG, SIGTERM), syscall 157
        syscall(157, 1, 15) if $Config{archname} =~ /^x86_64-linux/;

        exec @cmd or POSIX::_exit(127);
    }

    close $to_r;
    close $from_w;
    $to_w->autoflush(1);
    ($BrokerPid, $BrokerIn, $BrokerOut) = ($pid, $to_w, $from_r);

    # a JVM per broker: seconds, more on a loaded machine
    my $line = read_line($BrokerOut, time + 120, 'startup');
    $line =~ /^bootstrap (\S+)/
        or die "KafkaStream::Test: unexpected broker output: $line\n";
    $BrokerAddr = $1;
    $ENV{TEST_NGINX_KAFKA_BROKERS} = $BrokerAddr;
    return $BrokerAddr;
}


# the file's topics, empty, on the shared cluster: whatever an earlier run
# left under their names is deleted first
sub fresh_topics {
    my @names = map { (split /:/)[0] } @{$Opts{topics}};
    my $deadline = time + 60;
    my ($ok, $output);

    for (;;) {
        topics_tool('delete', @names);
        ($ok, $output) = topics_tool('create', @{$Opts{topics}});
        last if $ok;
        die "KafkaStream::Test: cannot create @names on $BrokerAddr: "
            . "$output" if time > $deadline;
        sleep 0.5;
    }
}


# runs kafka-stream-topics: (true if it succeeded, its output)
sub topics_tool {
    my ($verb, @args) = @_;
    my @cmd = (tool('kafka-stream-topics'), '-q', '-b', $BrokerAddr,
               $verb, @args);

    my $pid = open3(my $in, my $out, undef, @cmd);
    close $in;
    local $/;
    my $output = <$out> // '';
    close $out;
    waitpid $pid, 0;

    return ($? == 0, $output);
}


sub topic_admin {
    my ($verb, @args) = @_;

    die "KafkaStream::Test: no broker\n" if !defined $BrokerAddr;
    my ($ok, $output) = topics_tool($verb, @args);
    die "KafkaStream::Test: kafka-stream-topics $verb @args failed: $output"
        if !$ok;
    return split /\n/, $output;
}


sub stop_broker {
    return if !defined $BrokerPid;

    kill 'TERM', $BrokerPid;
    my $deadline = time + 40;
    while (waitpid($BrokerPid, WNOHANG) == 0) {
        if (time > $deadline) {
            kill 'KILL', $BrokerPid;
            waitpid $BrokerPid, 0;
            last;
        }
        sleep 0.02;
    }

    close $BrokerIn;
    close $BrokerOut;
    undef $BrokerPid;
    undef $BrokerAddr;
}


sub kafka_brokers {
    return $BrokerAddr;
}


sub broker_control {
    my ($cmd) = @_;

    die "KafkaStream::Test: broker_control needs a broker of the test's "
        . "own (own_broker => 1)\n" if !defined $BrokerPid;
    syswrite $BrokerIn, "$cmd\n";
    my $answer = read_line($BrokerOut, time + 120, $cmd);
    die "KafkaStream::Test: broker_control(\"$cmd\"): $answer\n"
        if $answer ne 'ok' && $answer !~ /^pid \d+$/;
    return $answer;
}


sub restart_broker {
    broker_control('kill all');
    broker_control('start all');
    return $BrokerAddr;
}


sub field {
    my ($data) = @_;
    return pack 'N', 0xffffffff if !defined $data;
    return pack('N', length $data) . $data;
}


# produces [value, key, headers, timestamp] records in order; dies unless
# all landed
sub produce_records {
    my ($topic, $records, %opts) = @_;
    my @x = map { ('-X', $_) } @{$opts{config} || []};
    my $ts = grep { defined $_->[3] } @$records;
    my @cmd = (tool('kafka-produce'), ($ts ? ('-T') : ()), @x, '--',
               $BrokerAddr // die("KafkaStream::Test: no broker\n"),
               $topic, $opts{partition} // -1);

    # a helper that died early must fail the call, not kill the test
    local $SIG{PIPE} = 'IGNORE';

    # librdkafka keeps header names as C strings; values are bytes
    for my $r (@$records) {
        my @h = @{$r->[2] || []};
        die "KafkaStream::Test: a header name cannot contain NUL\n"
            if grep { $_ % 2 == 0 && $h[$_] =~ /\0/ } 0 .. $#h;
    }

    open my $pipe, '|-', @cmd or die "cannot run @cmd: $!\n";
    binmode $pipe;
    for my $r (@$records) {
        my @h = @{$r->[2] || []};
        print $pipe pack('q>', $r->[3] // 0) if $ts;
        print $pipe field($r->[1]), field($r->[0]), pack('N', @h / 2),
                    map { field($_) } @h;
    }
    close $pipe
        or die "KafkaStream::Test: producing to $topic failed (status $?)\n";
}


sub produce {
    my ($topic, $bytes, %opts) = @_;
    produce_records($topic,
                    [[$bytes, $opts{key}, $opts{headers}, $opts{timestamp}]],
                    %opts);
}


sub produce_batch {
    my ($topic, $messages, %opts) = @_;
    produce_records($topic,
                    [map { my ($bytes, %own) = @$_;
                           [$bytes, $own{key}, $own{headers}, $own{timestamp}]
                         } @$messages],
                    %opts);
}


sub slurp {
    my ($path) = @_;
    open my $in, '<:raw', $path or die "cannot read $path: $!\n";
    local $/;
    my $data = <$in>;
    close $in;
    return $data;
}


sub produce_files {
    my ($topic, $paths, %opts) = @_;
    produce_records($topic,
                    [map { [slurp($_), $opts{key}, $opts{headers}] } @$paths],
                    %opts);
}


sub produce_later {
    my ($delay, $interval, $topic, $payloads, %opts) = @_;

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        # _exit: the child must not run the parent's END blocks
        my $ok = eval {
            sleep $delay;
            for my $i (0 .. $#$payloads) {
                sleep $interval if $i > 0;
                produce($topic, $payloads->[$i], %opts);
            }
            1;
        };
        warn $@ if !$ok;
        POSIX::_exit($ok ? 0 : 1);
    }

    push @Children, $pid;
    return $pid;
}


# true when every produce_later child exited 0
sub wait_for_children {
    my $ok = 1;

    while (my $pid = shift @Children) {
        waitpid $pid, 0;
        $ok = 0 if $? != 0;
    }

    return $ok;
}


sub ffmpeg {
    my @cmd = ('ffmpeg', '-hide_banner', '-loglevel', 'error', '-nostdin',
               '-y', @_);
    system(@cmd) == 0 or die "KafkaStream::Test: @cmd: failed ($?)\n";
}


# n distinct images from ffmpeg's moving test pattern, as byte strings
sub make_frames {
    my ($n, %opts) = @_;
    my $format = $opts{format} // 'png';
    my $size = $opts{size} // '64x48';
    my $dir = tempdir('kafka-stream-frames-XXXXXX', TMPDIR => 1,
                      CLEANUP => 1);
    my $ext = $format eq 'jpeg' ? 'jpg' : $format;
    my @codec = $format eq 'jpeg' ? ('-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p')
                                  : ('-c:v', 'png');

    # the frame number in binary along the top rows keeps every frame
    # distinct even where the small pattern hardly moves
    my $counter = "geq=r='if(lt(Y,2),if(bitand(N,pow(2,floor(X*16/W))),"
                  . "255,0),r(X,Y))':g='g(X,Y)':b='b(X,Y)'";

    ffmpeg('-f', 'lavfi', '-i', "testsrc2=size=$size:rate=25,$counter",
           '-frames:v', $n, @codec, "$dir/frame-%05d.$ext");

    my @frames = map { slurp(sprintf "$dir/frame-%05d.$ext", $_) } 1 .. $n;
    return @frames;
}


sub make_video {
    my ($path, %opts) = @_;
    my $duration = $opts{duration} // 2;
    my $fps = $opts{fps} // 10;
    my $size = $opts{size} // '320x240';
    my @codec = $opts{codec} ? ('-c:v', $opts{codec}) : ();

    ffmpeg('-f', 'lavfi', '-i', "testsrc2=size=$size:rate=$fps",
           '-t', $duration, '-pix_fmt', $opts{pix_fmt} // 'yuv420p',
           @codec, @{$opts{args} || []}, $path);
    return $path;
}


sub consume {
    my ($topic, %opts) = @_;
    my $timeout = $opts{timeout} // 10;
    # fetch.wait.max.ms: Kafka holds a fetch at the end of the log that
    # long (500 ms by default) before kcat learns that it is the end
    my @cmd = ('kcat', '-C', '-J', '-q',
               '-b', $BrokerAddr // die("KafkaStream::Test: no broker\n"),
               '-t', $topic, '-o', $opts{from} // 'beginning',
               '-X', 'fetch.wait.max.ms=10');

    push @cmd, '-p', $opts{partition} if defined $opts{partition};
    # without a count, read what is there now and stop
    push @cmd, defined $opts{count} ? ('-c', $opts{count}) : ('-e');

    my $pid = open3(my $in, my $out, undef, @cmd);
    close $in;
    binmode $out;

    my ($sel, $buf, $deadline) = (IO::Select->new($out), '', time + $timeout);
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $out, $buf, 65536, length $buf;
        last if !$n;
    }

    kill 'TERM', $pid;
    waitpid $pid, 0;
    close $out;

    # kcat writes the bytes of keys and values as they are, escaping only
    # what JSON must: decoded as Latin-1 text, each byte is one character
    my $json = $JSON->new;
    my @msgs;

    # a line the timeout cut short is not a message
    $buf =~ s/[^\n]*\z//;

    for my $line (split /\n/, $buf) {
        next if $line !~ /^\{/;
        my $m = $json->decode($line);
        push @msgs, { key => $m->{key}, value => $m->{payload},
                      headers => $m->{headers} || [], timestamp => $m->{ts},
                      partition => $m->{partition}, offset => $m->{offset} };
    }

    return @msgs;
}


# the complete parts of a multipart body, each { headers, body }
sub multipart_parts {
    my ($body, $boundary) = @_;
    my $delim = qr/(?:\A|\r\n)--\Q$boundary\E/;
    my @parts;

    my @pieces = split /$delim/, $body, -1;
    shift @pieces;              # the preamble
    pop @pieces;                # incomplete, or the epilogue after "--"

    for my $piece (@pieces) {
        last if $piece =~ /^--/;
        $piece =~ s/^[ \t]*\r?\n//;
        # the headers end at the first empty line (there may be none)
        my ($head, $data) = $piece =~ /\A(.*?)(?:\A|\r?\n)\r?\n(.*)\z/s
            or next;
        my %h;
        for my $line (split /\r?\n/, $head) {
            $h{lc $1} = $2 if $line =~ /^([^:]+):\s*(.*?)\s*$/;
        }
        push @parts, { headers => \%h, body => $data };
    }

    return @parts;
}


END {
    my $status = $?;

    if ($$ == $Owner) {
        for my $pid (@Children) {
            kill 'TERM', $pid;
            waitpid $pid, 0;
        }
        stop_broker();
    }

    $? = $status;
}

# a test killed by a signal still stops its broker (END runs on exit)
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { exit 128 } if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}

1;
